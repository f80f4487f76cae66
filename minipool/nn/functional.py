"""The functional namespace: ``import minipool.nn.functional as F``.

Every differentiable op, by family.  The ops themselves (validation, forward,
backward) live in ``minipool.ops``; this module only gathers their names.
"""
from minipool.ops.elementwise import (abs, add, clip, div, exp, log, mul, neg, pow, relu,  # noqa: F401
                                      sigmoid, sqrt, sub, tanh, where)
from minipool.ops.linalg import matmul  # noqa: F401
from minipool.ops.reduce import log_softmax, logsumexp, max, mean, min, softmax, sum  # noqa: F401
from minipool.ops.shape import (broadcast_to, cat, flatten, permute, reshape, squeeze,  # noqa: F401
                                stack, transpose, unsqueeze)
from minipool.ops.conv import conv1d, conv2d  # noqa: F401
from minipool.ops.conv_transpose import conv_transpose2d  # noqa: F401
from minipool.ops.nn_ops import dropout, linear  # noqa: F401
from minipool.ops.loss import cross_entropy, mse_loss, nll_loss  # noqa: F401
from minipool.ops.upsampling import (interpolate, pixel_shuffle, pixel_unshuffle, upsample,  # noqa: F401
                                     upsample_bilinear, upsample_nearest)
from minipool.ops.pooling import *  # noqa: F401,F403  (every pooling op; see its __all__)
from minipool.ops.batchnorm import batch_norm  # noqa: F401
from minipool.ops.activations import (dropout2d, elu, gelu, hardtanh, leaky_relu, relu6,  # noqa: F401
                                      silu, softplus)
from minipool.ops.padding import one_hot, pad  # noqa: F401
from minipool.ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                               huber_loss, kl_div, l1_loss, smooth_l1_loss)
from minipool.ops.normalization import (cosine_similarity, group_norm, instance_norm,  # noqa: F401
                                        layer_norm, normalize)
from minipool.ops.embedding import embedding  # noqa: F401
from minipool.ops.activations_more import (celu, glu, hardshrink, hardsigmoid, hardswish,  # noqa: F401
                                           logsigmoid, mish, selu, softmin, softshrink, softsign,
                                           tanhshrink, threshold)

clamp = clip
concatenate = cat
from minipool.ops.reduce import amax, amin, argmax, argmin, maximum, minimum, std, var  # noqa: F401,E402
