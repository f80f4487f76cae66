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
from minipool.ops.activations_more import (celu, celu_, dropout1d, dropout3d, elu_, glu,  # noqa: F401
                                           hardshrink, hardsigmoid, hardswish, hardtanh_,
                                           leaky_relu_, logsigmoid, mish, relu_, selu, selu_,
                                           softmin, softshrink, softsign, tanhshrink, threshold,
                                           threshold_)
from minipool.ops.activations_learned import prelu, rrelu, rrelu_  # noqa: F401
from minipool.ops.fold import fold, unfold  # noqa: F401
from minipool.ops.margin_losses import (cosine_embedding_loss, hinge_embedding_loss,  # noqa: F401
                                        margin_ranking_loss, multi_margin_loss, triplet_margin_loss)

clamp = clip
concatenate = cat
from minipool.ops.reduce import amax, amin, argmax, argmin, maximum, minimum, std, var  # noqa: F401,E402
from minipool.ops.normalization import pairwise_distance  # noqa: F401,E402
from minipool.ops.upsampling import channel_shuffle  # noqa: F401,E402
native_channel_shuffle = channel_shuffle

# torch.nn.functional names minipool does not have: an AttributeError that says what to
# use instead, never a silent near-miss (docs/differences.md lists them).
_LOSSES = ("minipool's losses are cross_entropy, nll_loss, mse_loss, l1_loss, smooth_l1_loss, "
           "huber_loss, binary_cross_entropy(_with_logits), kl_div and the margin losses "
           "(margin_ranking, hinge_embedding, cosine_embedding, triplet_margin, multi_margin); "
           "compose this one from "
           "tensor ops (F.relu, F.cosine_similarity, mp.norm, .mean()), autograd follows")
_WITH_INDICES = "call F.{base}(..., return_indices=True), which returns (output, indices)"
_NOT_HERE = {
    **{name: "minipool has conv1d, conv2d and conv_transpose2d (2-D CNNs)"
       for name in ("conv3d", "conv_transpose1d", "conv_transpose3d", "conv_tbc")},
    **{f"{base}_with_indices": _WITH_INDICES.format(base=base)
       for base in ("max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
                    "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d",
                    "fractional_max_pool3d")},
    **{name: _LOSSES for name in (
        "multilabel_margin_loss", "multilabel_soft_margin_loss",
        "soft_margin_loss", "triplet_margin_with_distance_loss",
        "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "linear_cross_entropy")},
    "pdist": "compose it from mp.norm over the pairs of rows you need",
    "alpha_dropout": "minipool has no alpha dropout (SELU networks); F.dropout and F.dropout1d/2d/3d",
    "feature_alpha_dropout": "minipool has no alpha dropout (SELU networks); F.dropout2d",
    "affine_grid": "spatial transformers are not in minipool; F.interpolate resizes",
    "grid_sample": "spatial transformers are not in minipool; F.interpolate resizes",
    "bilinear": "minipool has no bilinear layer; F.linear on the concatenated inputs",
    "embedding_bag": "F.embedding(indices, weight) then .sum(dim) or .mean(dim) over the bag",
    "gumbel_softmax": "not in minipool; F.softmax of (logits + Gumbel noise) / tau",
    "local_response_norm": "not in minipool; F.batch_norm, F.layer_norm or F.group_norm",
    "rms_norm": "compose it: x * ((x * x).mean(-1, keepdim=True) + eps).rsqrt() * weight",
    **{name: "attention and grouped/scaled matmuls are outside a tiny-CNN library; "
             "F.softmax and mp.matmul compose plain attention"
       for name in ("scaled_dot_product_attention", "multi_head_attention_forward",
                    "grouped_mm", "scaled_mm", "scaled_grouped_mm")},
    **{name: "a PyTorch internal (its __torch_function__ and argument plumbing); "
             "nothing to call here"
       for name in ("handle_torch_function", "has_torch_function", "has_torch_function_unary",
                    "has_torch_function_variadic", "boolean_dispatch", "assert_int_or_pair")},
}


def __getattr__(name):
    reason = _NOT_HERE.get(name)
    if reason is None:
        reason = ("minipool implements the part of torch.nn.functional that tiny CNNs use: "
                  "see the README's tables and docs/differences.md")
    raise AttributeError(f"module 'minipool.nn.functional' has no attribute {name!r}: {reason}")
