"""Window tables: what every pooling kernel family walks.

Every pooling kind walks the same thing: *windows*.  Python builds, once per
call geometry, per-axis tables (``WindowTables``): for each output position
along an axis, the first real (in-bounds) input cell, the number of real
cells (stepping by the dilation) and the divisor factor.  A window is the
product of its three axes' cell lists, scanned row-major (d, h, w).  1-d and
2-d pooling are 3-d pooling with size-1 axes; adaptive and global pooling are
just other tables.  For one output row (od, oh) the (d, h) rows of its
windows are the same for every ow, so ``_rows`` lists them once per row.

Layout.  Every kernel sees its input as ``(B, S, C)``: B independent parts,
S = D*H*W spatial cells, C channels innermost.  Channels-last data (NHWC) is
that layout as is: each window is walked once and the inner loops run over
contiguous channels (the compiler vectorises them).  Channels-first data
(NCHW) is B = N*C planes with C = 1; there the inner loops run along an
output row instead ("row passes"): for the outputs whose windows are whole
along W and lie on a regular grid, each window cell is visited for all of
them at once.  Two shapes that dominate real networks (2x2 stride 2; 3x3
stride 2 padding 1) have fully unrolled row passes, and a plane whose
windows are all whole 2x2 stride 2 is done in plane-level loops with no
per-row bookkeeping.  Border windows go through a scalar loop.  Planes with
a few large windows (global pooling) are walked several side by side.
Every path visits a window's cells in scan order and accumulates from 0 in
that order (sums of windows with more than SCAN_SUM_MAX cells go to LANES
partial sums by cell ordinal, see _window_sum in pool_kinds.pxd), so all
paths and both layouts give bit-identical results.

Paths.  Which loop nest runs is decided once, in Python (``PoolPlan`` in
minipool/ops/pooling/_geometry.py, the ``Path`` enum of pool_windows.pxd);
every kernel entry switches on it, and the module docstrings of pool_extreme
and pool_sum map each path to its functions.  ``WindowTables.check_path``
refuses a path the tables cannot take, so a wrong plan raises instead of
reading outside the input.

Kinds.  What a window's cells become (running max, running min, sum of
powers) is a compile-time tag of pool_kinds.pxd (``kind_t``): a walk every
kind shares (``_plane_group``) is written once and compiled per kind.  The
.pxd files hold inline functions only, so they are compiled into each module
that cimports them, inlined like the module's own code.

Parallelism.  The OpenMP team splits the work into *units* (``_unit``): one
index b of the view and a slice of ``unit_size`` channels (NHWC) or one plane
(NCHW; ``unit_size`` planes side by side on PATH_PLANE_GROUP).  A unit owns
every output and every gradient cell of its slice, so backward scatters are
plain ``+=`` without atomics and the result is bit-identical for any thread
count.

Argmax storage ("codes").  Max/min/stochastic forward store, per output, which
cell won: a uint8 *ordinal* among the window's real cells in scan order when
every window has at most 255 cells (255 marks "no cell"), else the int32
offset in the plane (-1 marks "no cell").  ``codes_to_indices`` turns them
into PyTorch's int64 plane indices only when a caller asks for indices.
"""

cimport numpy as cnp
import numpy as np

cnp.import_array()


cdef void* thread_scratch(Py_ssize_t width, int num_threads, object dtype,
                          list keep) except NULL:
    """``width`` items of ``dtype`` per thread (thread t's at + t * width) for one kernel
    call; the array goes to ``keep``, which the caller holds.  Only the paths that use it
    ask: an array per call costs about 0.5 us of a kernel call's fixed cost."""
    cdef cnp.ndarray array = np.empty(max(1, num_threads) * max(1, width), dtype=dtype)
    keep.append(array)
    return cnp.PyArray_DATA(array)


cdef class WindowTables:
    """The per-axis window tables of one call geometry, in the form the kernels read.

    ``first``, ``count`` (intp) and ``divisor`` (float64) are three arrays each
    (axes d, h, w) of that axis's output length.  ``span`` is the W-axis
    regular span ``(lo, hi, origin, stride, cells)`` (``lo == hi`` if none);
    ``fast`` is 0, 1 (2x2 stride 2) or 2 (3x3 stride 2 padding 1): the unrolled
    loops rows of that many (d, h) rows take.  ``whole_plane``: every window is
    a whole 2x2 stride 2 one (what the QUADS paths need).
    """

    def __init__(self, first, count, divisor, size_in, step, span, int fast):
        cdef const Py_ssize_t[::1] ints
        cdef const double[::1] reals
        cdef int a
        keep = []
        for a in range(3):
            f = np.ascontiguousarray(first[a], dtype=np.intp)
            n = np.ascontiguousarray(count[a], dtype=np.intp)
            dv = np.ascontiguousarray(divisor[a], dtype=np.float64)
            if not (f.ndim == n.ndim == dv.ndim == 1 and f.size == n.size == dv.size >= 1):
                raise ValueError("window tables must be 1-d arrays of one non-zero length per axis")
            keep += [f, n, dv]
            ints = f
            self.w.first[a] = &ints[0]
            ints = n
            self.w.count[a] = &ints[0]
            reals = dv
            self.w.divisor[a] = &reals[0]
            self.w.size_in[a] = size_in[a]
            self.w.size_out[a] = f.size
            self.w.step[a] = step[a]
        lo, hi, origin, stride, cells = span
        if not 0 <= lo <= hi <= self.w.size_out[2]:
            raise ValueError(f"bad W span {span}")
        self.w.span_lo, self.w.span_hi = lo, hi
        self.w.span_origin, self.w.span_stride, self.w.span_cells = origin, stride, cells
        self.w.max_rows = max(1, int(np.max(keep[1])) * int(np.max(keep[4])))
        # the unrolled loops read their exact window shape along W (PoolPlan asks
        # for them only then): refuse, rather than read outside a window
        if ((fast == FAST_2X2 and (stride, cells, origin, self.w.step[2]) != (2, 2, 0, 1))
                or (fast == FAST_3X3 and (stride, cells, origin, self.w.step[2]) != (2, 3, -1, 1))
                or fast not in (FAST_NONE, FAST_2X2, FAST_3X3)):
            raise ValueError(f"unrolled kind {fast} does not fit the W span {span}")
        self.w.fast = fast
        self.w.fast_rows = 2 if fast == FAST_2X2 else 3
        self.w.whole_plane = (fast == FAST_2X2 and bool((keep[1] == 1).all())
                              and bool((keep[4] == 2).all()) and bool((keep[7] == 2).all())
                              and lo == 0 and hi == self.w.size_out[2])
        self.max_rows = self.w.max_rows
        self.whole_plane = self.w.whole_plane
        self._keep = keep

    cdef Py_ssize_t* row_scratch(self, int num_threads, list keep) except NULL:
        """Per-thread room for ``_rows`` (the (d, h) rows of one output row's windows):
        thread t's at ``_thread_rows``; for the paths that walk rows (``thread_scratch``)."""
        return <Py_ssize_t*>thread_scratch(self.max_rows, num_threads, np.intp, keep)

    cdef int check_path(self, Path path, Py_ssize_t C) except -1:
        """ValueError if ``path`` cannot walk these tables with C channels: a wrong
        plan must fail here, not read outside the input.  (A C-level method: a Python
        method call cost LeNet's pooling backward 0.15 us of ~70.)"""
        if path not in (PATH_ROWS, PATH_CHANNELS, PATH_PLANE_GROUP, PATH_QUADS_PLANE,
                        PATH_QUADS_CHANNELS):
            raise ValueError(f"unknown kernel path {path}")
        if C != 1 and path in (PATH_ROWS, PATH_PLANE_GROUP, PATH_QUADS_PLANE):
            raise ValueError(f"kernel path {path} takes planes (C == 1), got C = {C}")
        if path in (PATH_QUADS_PLANE, PATH_QUADS_CHANNELS) and not self.w.whole_plane:
            raise ValueError(f"kernel path {path} needs whole 2x2 stride 2 windows")
        return 0
