"""Layers: thin Modules holding parameters and calling ``minipool.nn.functional``."""
from minipool.nn import functional  # noqa: F401
from minipool.nn.module import Module, Parameter, Sequential  # noqa: F401
from minipool.nn.activation import (Flatten, Identity, LogSoftmax, ReLU, Sigmoid, Softmax,  # noqa: F401
                                   Softmax2d, Tanh)
from minipool.nn import init  # noqa: F401
from minipool.nn.conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: F401
from minipool.nn.linear import Dropout, Linear  # noqa: F401
from minipool.nn.loss import CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401
from minipool.nn.upsampling import (PixelShuffle, PixelUnshuffle, UpSampling2D, Upsample,  # noqa: F401
                                    UpsamplingBilinear2d, UpsamplingNearest2d)
from minipool.nn.pooling import *  # noqa: F401,F403  (every pooling layer; see its __all__)
from minipool.nn.batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from minipool.nn.keras import (Activation, BatchNormalization, Conv2D, Conv2DTranspose,  # noqa: F401
                              Convolution2D, Convolution2DTranspose, Dense, ZeroPadding2D)
from minipool.nn.activation import (ELU, GELU, Dropout1d, Dropout2d, Dropout3d, Hardtanh,  # noqa: F401
                                   LeakyReLU, ReLU6, SiLU, Softplus)
from minipool.nn.loss import (BCELoss, BCEWithLogitsLoss, HuberLoss, KLDivLoss, L1Loss,  # noqa: F401
                             SmoothL1Loss)
from minipool.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList  # noqa: F401
from minipool.nn import utils  # noqa: F401
from minipool.nn.normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm  # noqa: F401
from minipool.nn.embedding import Embedding  # noqa: F401
from minipool.nn.activation import Unflatten  # noqa: F401
from minipool.nn.activation_learned import PReLU, RReLU  # noqa: F401
from minipool.nn.fold import Fold, Unfold  # noqa: F401
from minipool.nn.loss import (CosineEmbeddingLoss, HingeEmbeddingLoss, MarginRankingLoss,  # noqa: F401
                              MultiMarginLoss, TripletMarginLoss)
from minipool.nn.padding import *  # noqa: F401,F403  (the 1-d and 2-d padding layers)
from minipool.nn.activation_more import (CELU, GLU, SELU, Hardshrink, Hardsigmoid,  # noqa: F401
                                        Hardswish, LogSigmoid, Mish, Softmin, Softshrink,
                                        Softsign, Tanhshrink, Threshold)
from minipool.nn.distance import CosineSimilarity, PairwiseDistance  # noqa: F401
from minipool.nn.upsampling import ChannelShuffle  # noqa: F401


def __getattr__(name):
    # a torch.nn name minipool does not have: say so, rather than Python's bare message
    raise AttributeError(f"module 'minipool.nn' has no attribute {name!r}: minipool implements the "
                         f"layers tiny CNNs use (the README's 'For PyTorch users', "
                         f"docs/differences.md); write it as a Module of minipool ops")
