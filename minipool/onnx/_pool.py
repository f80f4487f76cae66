"""Pooling: window pools (max/min/avg/sum/LP), adaptive and global pools, stochastic
pooling (inference rule), max unpooling and BlurPool.

The traced keys are the pooling package's shared helpers (``_extreme``,
``_average``, ...), which every 1-d/2-d/3-d public function calls with the
op's name, so one converter serves each kind.  minipool-only pools become
compositions of standard ops:

* min pooling: ``-MaxPool(-x)``;
* sum pooling: ``AveragePool(count_include_pad=1) * window span`` (the span is
  the kernel area, clipped where a ceil_mode window overhangs the padding);
* LP pooling: ``(AveragePool(x ** p) * cells) ** (1 / p)`` (LpPool itself takes
  |x|, PyTorch and minipool take x), native ``LpPool`` for even p;
* stochastic pooling in eval: ``AveragePool(x * x) / AveragePool(x)``, 0 where
  the window sums to 0;
* BlurPool: reflect ``Pad`` then a depthwise ``Conv`` with the binomial filter.
"""
import numpy as np

from minipool._validate import int_tuple, parse_data_format
from minipool.onnx._graph import channels_first_around
from minipool.onnx.table import converts
from minipool.ops.pooling import _geometry as geo
from minipool.ops.pooling import adaptive, blur, stochastic, unpool, window


class _Window:
    """A window pool's resolved geometry, per spatial axis (window_plan's rules)."""

    def __init__(self, op, x, rank, kernel_size, stride, padding, dilation, ceil_mode, data_format):
        self.channels_last = parse_data_format(op, data_format)
        self.kernel = int_tuple(kernel_size, rank, "kernel_size", op, 1)
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
            self.stride = self.kernel
        else:
            self.stride = int_tuple(stride, rank, "stride", op, 1)
        self.dilation = int_tuple(dilation, rank, "dilation", op, 1)
        self.spatial = geo.layout_of(op, x.shape, rank, self.channels_last).spatial
        self.same = isinstance(padding, str) and padding.lower() == "same"
        if self.same:
            sizes = [geo.same_padding(n, k, s, d) for n, k, s, d in
                     zip(self.spatial, self.kernel, self.stride, self.dilation)]
            self.out = [o for o, _, _ in sizes]
            self.before, self.after = [b for _, b, _ in sizes], [a for _, _, a in sizes]
            self.ceil_mode = False
        else:
            if isinstance(padding, str):  # "valid"
                padding = (0,) * rank
            self.before = self.after = list(int_tuple(padding, rank, "padding", op, 0))
            self.ceil_mode = bool(ceil_mode)
            self.out = [geo.pooled_length(n, k, s, b, a, d, self.ceil_mode) for n, k, s, b, a, d in
                        zip(self.spatial, self.kernel, self.stride, self.before, self.after,
                            self.dilation)]
        self.rank = rank
        # ONNX's ceil_mode has no PyTorch rule "the last window starts inside the input or
        # the left padding" (onnx's shape inference counts one window more), so when that
        # rule drops a window the pool runs in floor mode with the padding after grown just
        # enough to reach the last kept window (a window that only reads the extra padding
        # is impossible: padding <= half the kernel).
        self.pads_after, self.repadded = list(self.after), False
        if self.ceil_mode:
            for i, (n, o, k, s, b, a, d) in enumerate(zip(self.spatial, self.out, self.kernel,
                                                          self.stride, self.before, self.after,
                                                          self.dilation)):
                if (n + b + a - d * (k - 1) - 1 + s - 1) // s + 1 != o:
                    self.repadded = True
            if self.repadded:
                self.pads_after = [max(a, (o - 1) * s + d * (k - 1) + 1 - n - b) for n, o, k, s, b, a, d
                                   in zip(self.spatial, self.out, self.kernel, self.stride,
                                          self.before, self.after, self.dilation)]

    def attrs(self, g, dilations=True):
        ceil = self.ceil_mode and not self.repadded
        pads = list(self.before) + list(self.pads_after)
        if any(p >= k for p, k in zip(pads, list(self.kernel) * 2)):
            # onnxruntime refuses a pad that is not below the (undilated) kernel; PyTorch's limit
            # counts dilation, and ceil_mode's grown end padding can reach it too
            g.fail(f"padding {pads} reaches the kernel size {list(self.kernel)}: onnxruntime's "
                   "pools need every pad below the kernel")
        out = dict(kernel_shape=list(self.kernel), strides=list(self.stride),
                   pads=pads, ceil_mode=int(ceil))
        if dilations and any(d != 1 for d in self.dilation):
            out["dilations"] = list(self.dilation)
        return out

    def empty_windows(self):
        """Boolean table of the windows holding no real cell (only with dilation), or None."""
        table = self.factor_map("count")
        return (table == 0) if np.any(table == 0) else None

    def factor_map(self, divisor):
        """The per-output-cell divisor table of ``axis_windows`` ("span" or "count"), as a
        constant that broadcasts over (N, C, *spatial)."""
        table = np.ones(())
        for n, o, k, s, b, a, d in zip(self.spatial, self.out, self.kernel, self.stride,
                                       self.before, self.after, self.dilation):
            _, _, factor = geo.axis_windows(n, o, k, s, b, a, d, divisor)
            table = np.multiply.outer(table, factor)
        return table


def _around(g, x, rank, channels_last, body):
    return channels_first_around(g, g.value(x), x.ndim, rank, channels_last, body)


def _max_pool(g, name, w, with_indices):
    if with_indices:
        return g.node("MaxPool", [name], outputs=2, **w.attrs(g))
    return g.node("MaxPool", [name], **w.attrs(g))


def _indices_result(g, w, raw, output):
    """MaxPool's indices count over the whole tensor; minipool's (PyTorch's) within one
    plane: Mod by the plane size.  The global ones are kept for MaxUnpool."""
    indices = output[1]
    if w.channels_last:
        g.fail("return_indices=True with channels_last input has no ONNX form here")
    g.pool_indices[id(indices)] = raw
    g._keep.append(indices)
    plane = int(np.prod(w.spatial))
    out = g.node("Mod", [raw, g.const(np.asarray(plane, np.int64))])
    empty = w.empty_windows()
    if empty is not None:  # minipool's index for a window of padding only
        out = g.node("Where", [g.const(empty, "empty_windows"), g.const(np.asarray(-1, np.int64)), out])
    return out


@converts(window._extreme)
def extreme(g, event):
    """MaxPool, or -MaxPool(-x) for min pooling."""
    a = event.args
    x, rank = a["input"], a["rank"]
    w = _Window(a["op"], x, rank, a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                a["ceil_mode"], a["data_format"])
    is_min, with_indices = a["is_min"], bool(a["return_indices"])
    raw = []

    empty = w.empty_windows()

    def body(name):
        if is_min:
            name = g.node("Neg", [name])
        out = _max_pool(g, name, w, with_indices)
        if with_indices:
            out, idx = out
            raw.append(idx)
        if empty is not None:  # a window of padding only: -inf (onnxruntime gives the lowest float)
            out = g.node("Where", [g.const(empty, "empty_windows"),
                                   g.scalar(-np.inf, x.dtype), out])
        return g.node("Neg", [out]) if is_min else out
    values = _around(g, x, rank, w.channels_last, body)
    if not with_indices:
        return values
    if x.ndim == rank + 1:
        g.fail("return_indices=True with unbatched input has no ONNX form here")
    return values, _indices_result(g, w, raw[0], event.output)


def _scaled(g, name, table, dtype):
    """``name`` times a divisor table (skipped when it is all ones)."""
    if np.all(table == 1):
        return name
    if np.all(table == table.flat[0]):
        return g.node("Mul", [name, g.scalar(table.flat[0], dtype)])
    return g.node("Mul", [name, g.const(table.astype(dtype), "window_span")])


@converts(window._average)
def average(g, event):
    """AveragePool with PyTorch's count_include_pad and ceil_mode (ONNX's rules are the
    same); divisor_override rescales the span-divided average."""
    a = event.args
    x, rank = a["input"], a["rank"]
    w = _Window(a["op"], x, rank, a["kernel_size"], a["stride"], a["padding"], 1, a["ceil_mode"],
                a["data_format"])
    override = a["divisor_override"]
    include = bool(a["count_include_pad"]) and not w.same  # SAME divides by real cells
    if override is not None:
        include = True

    def body(name):
        if w.repadded and include:  # the grown padding must not count: real cells, rescaled
            out = g.node("AveragePool", [name], count_include_pad=0, **w.attrs(g, False))
            span = w.factor_map("span") if override is None else float(override)
            return _scaled(g, out, w.factor_map("count") / span, x.dtype)
        out = g.node("AveragePool", [name], count_include_pad=int(include), **w.attrs(g, False))
        if override is not None:
            out = _scaled(g, out, w.factor_map("span") / float(override), x.dtype)
        return out
    return _around(g, x, rank, w.channels_last, body)


@converts(window._sum)
def sum_pool(g, event):
    """Sum pooling: AveragePool(count_include_pad=1) times the window span (the real cells'
    mean times their count when a ceil_mode window was dropped, see _Window)."""
    a = event.args
    x, rank = a["input"], a["rank"]
    w = _Window(a["op"], x, rank, a["kernel_size"], a["stride"], a["padding"], 1, a["ceil_mode"],
                a["data_format"])

    def body(name):
        if w.repadded:
            out = g.node("AveragePool", [name], count_include_pad=0, **w.attrs(g, False))
            return _scaled(g, out, w.factor_map("count"), x.dtype)
        out = g.node("AveragePool", [name], count_include_pad=1, **w.attrs(g, False))
        return _scaled(g, out, w.factor_map("span"), x.dtype)
    return _around(g, x, rank, w.channels_last, body)


@converts(window._lp)
def lp_pool(g, event):
    a = event.args
    x, rank, p = a["input"], a["rank"], float(a["norm_type"])
    w = _Window(a["op"], x, rank, a["kernel_size"], a["stride"], 0, 1, a["ceil_mode"],
                a["data_format"])
    dt = x.dtype
    overhang = any(o != geo.pooled_length(n, k, s, 0, 0, 1, False)
                   for n, o, k, s in zip(w.spatial, w.out, w.kernel, w.stride))

    def body(name):
        if np.isinf(p):  # max (or min, for -inf) of |x|
            name = g.node("Abs", [name])
            if p < 0:
                return g.node("Neg", [_max_pool(g, g.node("Neg", [name]), w, False)])
            return _max_pool(g, name, w, False)
        if p == int(p) and int(p) % 2 == 0 and not overhang:  # |x|^p = x^p: ONNX's own LpPool
            return g.node("LpPool", [name], p=int(p), kernel_shape=list(w.kernel),
                          strides=list(w.stride), pads=[0] * (2 * rank))
        powered = name if p == 1 else g.node("Pow", [name, g.scalar(p, dt)])
        avg = g.node("AveragePool", [powered], count_include_pad=0, **w.attrs(g, False))
        total = _scaled(g, avg, w.factor_map("count"), dt)
        return total if p == 1 else g.node("Pow", [total, g.scalar(1.0 / p, dt)])
    return _around(g, x, rank, w.channels_last, body)


# ----------------------------------------------------------------------------- adaptive
def _adaptive(g, event, kind):
    """Global pooling for output 1, a plain pool when each input size divides, else refused."""
    a = event.args
    x, rank = a["input"], a["rank"]
    channels_last = parse_data_format(a["op"], a["data_format"])
    spatial = geo.layout_of(a["op"], x.shape, rank, channels_last).spatial
    output = event.output[0] if isinstance(event.output, tuple) else event.output
    out = output.shape[-rank - 1:-1] if channels_last else output.shape[-rank:]
    with_indices = bool(a.get("return_indices", False))
    if all(o == 1 for o in out) and not with_indices:
        op = "GlobalMaxPool" if kind == "max" else "GlobalAveragePool"
        return _around(g, x, rank, channels_last, lambda name: g.node(op, [name]))
    if any(n % o for n, o in zip(spatial, out)):
        g.fail(f"adaptive pooling of {tuple(spatial)} to {tuple(out)} has no ONNX form: the input "
               "size must be a multiple of the output size (then it is a plain pool)")
    kernel = [n // o for n, o in zip(spatial, out)]
    w = _Window(a["op"], x, rank, kernel, kernel, 0, 1, False, a["data_format"])
    if kind == "avg":
        return _around(g, x, rank, channels_last,
                       lambda name: g.node("AveragePool", [name], **w.attrs(g, False)))
    raw = []

    def body(name):
        out = _max_pool(g, name, w, with_indices)
        if with_indices:
            out, idx = out
            raw.append(idx)
        return out
    values = _around(g, x, rank, channels_last, body)
    if not with_indices:
        return values
    if x.ndim == rank + 1:
        g.fail("return_indices=True with unbatched input has no ONNX form here")
    return values, _indices_result(g, w, raw[0], event.output)


@converts(adaptive._adaptive_max)
def adaptive_max(g, event):
    return _adaptive(g, event, "max")


@converts(adaptive._adaptive_avg)
def adaptive_avg(g, event):
    return _adaptive(g, event, "avg")


# ----------------------------------------------------------------------------- stochastic
@converts(stochastic.stochastic_pool2d)
def stochastic_pool(g, event):
    """Inference rule sum(a^2) / sum(a) as AveragePool(x*x) / AveragePool(x); 0 where the
    window sums to 0 (minipool's rule for an all-zero window)."""
    a = event.args
    if a["training"]:
        g.fail("stochastic_pool2d in training mode samples at random and has no ONNX form; "
               "export calls model.eval(), so pass training=self.training")
    x = a["input"]
    w = _Window("stochastic_pool2d", x, 2, a["kernel_size"], a["stride"], 0, 1, False,
                a["data_format"])
    dt = x.dtype

    def body(name):
        attrs = w.attrs(g, False)
        squares = g.node("AveragePool", [g.node("Mul", [name, name])], **attrs)
        plain = g.node("AveragePool", [name], **attrs)
        zero = g.scalar(0.0, dt)
        empty = g.node("Equal", [plain, zero])
        safe = g.node("Where", [empty, g.scalar(1.0, dt), plain])
        return g.node("Where", [empty, zero, g.node("Div", [squares, safe])])
    return _around(g, x, 2, w.channels_last, body)


# ----------------------------------------------------------------------------- unpooling
@converts(unpool._unpool)
def max_unpool(g, event):
    """MaxUnpool, fed the global indices of the ONNX MaxPool that produced them."""
    a = event.args
    x, indices, rank = a["input"], a["indices"], a["rank"]
    raw = g.pool_indices.get(id(indices))
    if raw is None:
        g.fail("max_unpool needs indices computed in the graph by max pooling with "
               "return_indices=True (constant or edited indices have no ONNX form here)")
    if x.ndim != rank + 2:
        g.fail("max_unpool of unbatched input has no ONNX form here")
    kernel = int_tuple(a["kernel_size"], rank, "kernel_size", a["op"], 1)
    stride = kernel if a["stride"] is None else int_tuple(a["stride"], rank, "stride", a["op"], 1)
    padding = int_tuple(a["padding"], rank, "padding", a["op"], 0)
    out_spatial = tuple(event.output.shape[-rank:])
    default = tuple((n - 1) * s + k - 2 * p for n, k, s, p in
                    zip(x.shape[-rank:], kernel, stride, padding))
    inputs = [g.value(x), raw]
    if out_spatial != default:
        inputs.append(g.node("Concat", [g.shape_prefix(g.value(x), 2), g.ints(out_spatial)], axis=0))
    return g.node("MaxUnpool", inputs, kernel_shape=list(kernel), strides=list(stride),
                  pads=list(padding) * 2)


# ----------------------------------------------------------------------------- BlurPool
@converts(blur.blur_pool2d)
def blur_pool(g, event):
    a = event.args
    x = a["input"]
    op = "blur_pool2d"
    kernel = int_tuple(a["kernel_size"], 2, "kernel_size", op, 1, blur.MAX_KERNEL)
    strides = int_tuple(a["stride"], 2, "stride", op, 1, blur.MAX_STRIDE)
    channels_last = parse_data_format(op, a["data_format"])
    C = x.shape[-1] if channels_last else x.shape[-3]
    rows = [blur._filter(k) for k in kernel]
    filt = np.multiply.outer(rows[0], rows[1]).astype(x.dtype)
    weight = g.const(np.broadcast_to(filt, (C, 1) + filt.shape).copy(), "blur_filter")
    (top, bottom), (left, right) = blur._pads(kernel[0]), blur._pads(kernel[1])

    def body(name):
        padded = g.node("Pad", [name, g.ints([0, 0, top, left, 0, 0, bottom, right])], mode="reflect")
        return g.node("Conv", [padded, weight], kernel_shape=list(kernel), strides=list(strides),
                      group=int(C))
    return _around(g, x, 2, channels_last, body)
