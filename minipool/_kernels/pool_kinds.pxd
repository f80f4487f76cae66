# What a pooling kind does to one window's cells, as compile-time kind tags.
#
# Max and min pooling keep a running extreme (min is max in key space, see
# _key); avg, sum and LP keep a running sum of x ** p.  A kernel shared by the
# kinds takes a ``kind_t`` tag argument: Cython compiles it once per tag, and
# every ``if kind_t is ...`` is decided at compile time, so the loops hold the
# one kind's operations, straight-line, with no per-element test of the kind.
from libc.math cimport INFINITY, pow, sqrt
from libc.stdint cimport INT32_MIN, INT64_MIN, int32_t, int64_t, uint8_t

from minipool._kernels.pool_windows cimport (FAST_2X2, MAX_GROUP, NO_CELL_U8, WindowCursor,
                                             Windows, _before_first_window, _divisor,
                                             _next_window, code_t, pool_t)

cdef enum:
    SCAN_SUM_MAX = 64       # windows up to this many cells are summed in scan order,
    LANES = 16              # larger ones in LANES partial sums (see _window_sum)
    PLAIN_MIN = 16          # fewest channels for _window_max_plain (same results either way)


cdef struct KeepMax:        # max pooling: the first greatest cell (NaN wins)
    char unused
cdef struct KeepMin:        # min pooling: max pooling of the keys -x (floats) / ~x (integers)
    char unused
cdef struct PowerOne:       # plain sums: avg, sum, LP with p = 1
    char unused
cdef struct PowerTwo:       # x*x and sqrt: LP with p = 2
    char unused
cdef struct PowerAny:       # pow(x, p) and pow(s, 1/p): LP with any other p
    double p

ctypedef fused power_t:
    PowerOne
    PowerTwo
    PowerAny

cdef struct Spread:         # the backward of avg/sum: every cell gets its window's share
    char unused

ctypedef fused kind_t:
    KeepMax
    KeepMin
    PowerOne
    PowerTwo
    PowerAny

ctypedef fused sum_op_t:    # a sum's forward (a power kind) or backward (Spread)
    PowerOne
    PowerTwo
    PowerAny
    Spread

ctypedef fused quad_op_t:   # what the QUADS walkers (pool_quads.pxd) do with a 2x2 window
    KeepMax
    KeepMin
    PowerOne
    PowerTwo
    PowerAny
    Spread


# ----------------------------------------------------------------------------- max and min
# Min pooling is max pooling in "key space": every value is mapped through an
# order-reversing bijection (x -> -x for floats, x -> ~x for integers), the
# max rule runs unchanged, and the winner is mapped back.  Both maps are exact
# and involutions, keep NaN a NaN, and keep the first of tied values first,
# so min inherits PyTorch's rules mirrored; and the loops hold one plain
# comparison, whichever the kind.

cdef inline pool_t _flip(const pool_t* type_tag, bint is_min) noexcept nogil:
    """The key-space map's parameter: a sign for floats, a bit mask for integers."""
    if pool_t is float or pool_t is double:
        return -1 if is_min else 1
    else:
        return <pool_t>(-1) if is_min else 0


cdef inline pool_t _key(pool_t v, pool_t flip) noexcept nogil:
    if pool_t is float or pool_t is double:
        return v * flip
    else:
        return v ^ flip


cdef inline pool_t _lowest(const pool_t* type_tag) noexcept nogil:
    """Where a max scan starts: -inf, or the integer type's lowest value."""
    if pool_t is float or pool_t is double:
        return -INFINITY
    elif pool_t is int32_t:
        return INT32_MIN
    elif pool_t is int64_t:
        return INT64_MIN
    else:
        return 0


cdef inline bint _beats(pool_t v, pool_t best) noexcept nogil:
    """PyTorch's rule: strictly greater (so the first tie wins) or NaN (so NaN
    propagates).  Bitwise |, not a branch, so loops become vector blends."""
    if pool_t is float or pool_t is double:
        return (v > best) | (v != v)
    else:
        return v > best


cdef inline pool_t _kind_flip(const pool_t* type_tag, quad_op_t kind) noexcept nogil:
    """The key-space map's parameter of a kind tag: min pooling's, else max pooling's
    (sums never use it)."""
    if quad_op_t is KeepMin:
        return _flip(type_tag, True)
    else:
        return _flip(type_tag, False)


cdef inline int _first_code(const code_t* type_tag, Py_ssize_t n_cells,
                            Py_ssize_t first_cell) noexcept nogil:
    """The code a window starts with: its first cell, or "no cell"."""
    if code_t is uint8_t:
        return 0 if n_cells > 0 else NO_CELL_U8
    else:
        return <int>first_cell if n_cells > 0 else -1


cdef inline void _take(pool_t v, int code, pool_t* best, int* best_code) noexcept nogil:
    # every select picks between values already loaded: GCC does not speculate
    # a load hidden in one arm, and would leave the loop scalar
    cdef pool_t m = best[0]
    cdef int k = best_code[0]
    cdef bint better = _beats(v, m)
    best[0] = v if better else m
    best_code[0] = code if better else k


# ----------------------------------------------------------------------------- whole 2x2 / 3x3 windows
# (the unrolled windows of max / min pooling's fast geometries, in a plane or NHWC)
cdef inline pool_t _extreme_2x2(const pool_t* r0, const pool_t* r1, Py_ssize_t c,
                                Py_ssize_t right, pool_t flip, int* code) noexcept nogil:
    """Max key of the 2x2 window whose top-left cell is r0[c] (its right neighbour
    is ``right`` further: 1 in a plane, C in NHWC); its ordinal goes to code."""
    cdef pool_t m = _key(r0[c], flip)
    code[0] = 0
    _take(_key(r0[c + right], flip), 1, &m, code)
    _take(_key(r1[c], flip), 2, &m, code)
    _take(_key(r1[c + right], flip), 3, &m, code)
    return m


cdef inline pool_t _extreme_3x3(const pool_t* r0, const pool_t* r1, const pool_t* r2,
                                Py_ssize_t c, Py_ssize_t right, pool_t flip,
                                int* code) noexcept nogil:
    """Max key of the 3x3 window whose top-left cell is r0[c] (its right neighbours
    are ``right`` and ``2 * right`` further); its ordinal goes to code."""
    cdef pool_t m = _key(r0[c], flip)
    code[0] = 0
    _take(_key(r0[c + right], flip), 1, &m, code)
    _take(_key(r0[c + 2 * right], flip), 2, &m, code)
    _take(_key(r1[c], flip), 3, &m, code)
    _take(_key(r1[c + right], flip), 4, &m, code)
    _take(_key(r1[c + 2 * right], flip), 5, &m, code)
    _take(_key(r2[c], flip), 6, &m, code)
    _take(_key(r2[c + right], flip), 7, &m, code)
    _take(_key(r2[c + 2 * right], flip), 8, &m, code)
    return m


cdef inline pool_t _tap(const pool_t* p0, const pool_t* p1, const pool_t* p2, Py_ssize_t i,
                        Py_ssize_t C, int t, int kw) noexcept nogil:
    """Channel i of cell t (scan order) of a whole kw x kw NHWC window with rows p0, p1, p2."""
    cdef const pool_t* row = p0 if t < kw else (p1 if t < 2 * kw else p2)
    return row[i + (t % kw) * C]


cdef inline bint _window_max_plain(const pool_t* p0, const pool_t* p1, const pool_t* p2,
                                   Py_ssize_t C, Py_ssize_t n, int kw, pool_t flip,
                                   pool_t* out, int* codes) noexcept nogil:
    """Floats: n channels of one whole kw x kw NHWC window, for windows without NaN.

    Without NaN, PyTorch's rule (``v > m or isnan(v)``, first tie wins) is a plain
    ``v > m`` (one max instruction), and the winner is the first cell equal to
    the max (-0 == +0 and ``>`` treats them alike), found in a second pass that
    counts the cells before it.  A NaN among the cells (or +inf with -inf) makes
    their running sum NaN: then nothing is trusted and False is returned (the
    caller redoes the chunk with the exact rule)."""
    cdef Py_ssize_t i
    cdef int t, cells = kw * kw, found, before
    cdef pool_t m, v, total
    cdef bint bad = False
    for i in range(n):
        m = _key(p0[i], flip)
        total = m
        for t in range(1, cells):
            v = _key(_tap(p0, p1, p2, i, C, t, kw), flip)
            m = v if v > m else m
            total = total + v
        out[i] = _key(m, flip)
        if pool_t is float or pool_t is double:   # (only floats come here)
            bad = bad | (total != total)
    if bad:
        return False
    if codes != NULL:
        for i in range(n):
            m = _key(out[i], flip)      # the key again (negation is exact)
            found = 0
            before = cells
            for t in range(cells):
                found = found | -(<int>(_key(_tap(p0, p1, p2, i, C, t, kw), flip) == m))
                before = before + found  # -1 for the winner and every cell after it
            codes[i] = before
    return True


cdef inline void _extreme_window_channels(const pool_t* p0, const pool_t* p1,
                                          const pool_t* p2, Py_ssize_t C, Py_ssize_t n,
                                          int fast, pool_t flip, pool_t* out,
                                          int* codes) noexcept nogil:
    """n channels of one whole 2x2 (3x3) NHWC window whose rows start at p0, p1 (, p2):
    every cell is a run of channels, so the loop runs along C (vectorised) with the
    running max and ordinal in registers instead of a buffer pass per cell.  Float
    windows without NaN take _window_max_plain."""
    cdef Py_ssize_t i
    cdef int unused
    if pool_t is float or pool_t is double:
        # (two passes pay off only over enough channels: fewer run the exact loop at once)
        if n >= PLAIN_MIN and _window_max_plain(p0, p1, p2, C, n, 2 if fast == FAST_2X2 else 3,
                                                flip, out, codes):
            return
    if fast == FAST_2X2 and codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_2x2(p0, p1, i, C, flip, &unused), flip)
    elif fast == FAST_2X2:
        for i in range(n):
            out[i] = _key(_extreme_2x2(p0, p1, i, C, flip, &codes[i]), flip)
    elif codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_3x3(p0, p1, p2, i, C, flip, &unused), flip)
    else:
        for i in range(n):
            out[i] = _key(_extreme_3x3(p0, p1, p2, i, C, flip, &codes[i]), flip)


# ----------------------------------------------------------------------------- sums of powers
cdef inline pool_t _raise(pool_t v, power_t pw) noexcept nogil:
    if power_t is PowerOne:
        return v
    elif power_t is PowerTwo:
        return v * v
    else:
        return <pool_t>pow(v, pw.p)


cdef inline pool_t _root(pool_t s, power_t pw) noexcept nogil:
    if power_t is PowerOne:
        return s
    elif power_t is PowerTwo:
        return <pool_t>sqrt(s)
    else:
        return <pool_t>pow(s, 1.0 / pw.p)


cdef inline void _lanes_add_run(const pool_t* a, Py_ssize_t n, Py_ssize_t lane0,
                                pool_t* lanes, power_t pw) noexcept nogil:
    """lanes[(lane0 + j) % LANES] += a[j] ** p for j < n, in order of j.  The whole
    blocks of LANES cells run on local accumulators (no aliasing with ``a``), so
    they stay in vector registers."""
    cdef pool_t acc[LANES]
    cdef Py_ssize_t j = 0, t, lane = lane0
    while lane != 0 and j < n:          # up to the next lane-0 cell
        lanes[lane] += _raise(a[j], pw)
        j += 1
        lane = (lane + 1) % LANES
    if j + LANES <= n:
        for t in range(LANES):
            acc[t] = lanes[t]
        while j + LANES <= n:
            for t in range(LANES):
                acc[t] += _raise(a[j + t], pw)
            j += LANES
        for t in range(LANES):
            lanes[t] = acc[t]
    t = 0
    while j < n:
        lanes[t] += _raise(a[j], pw)
        j += 1
        t += 1


cdef inline pool_t _window_sum(const pool_t* x, const Py_ssize_t* rows, Py_ssize_t nr,
                               Py_ssize_t w0, Py_ssize_t nw, Py_ssize_t sw,
                               power_t pw) noexcept nogil:
    """Sum of x ** p over one window of a plane.

    The summation order every path and both layouts share: a window of at
    most SCAN_SUM_MAX cells is summed from 0 in scan order; in a larger one
    (global pooling) the cell with ordinal k (scan order) goes to partial sum
    k % LANES, each partial sum runs from 0 in scan order, and the partial
    sums are added from 0 in lane order: LANES independent chains instead of
    one.  Consecutive rows that touch in memory are one run."""
    cdef Py_ssize_t r, j, k, run
    cdef pool_t total = 0
    cdef pool_t lanes[LANES]
    if nr * nw <= SCAN_SUM_MAX:
        for r in range(nr):
            for j in range(nw):
                total += _raise(x[rows[r] + w0 + j * sw], pw)
        return total
    for j in range(LANES):
        lanes[j] = 0
    k = 0
    r = 0
    while r < nr:
        if sw == 1:
            run = nw
            while r + 1 < nr and rows[r + 1] == rows[r] + nw:   # rows touch: one run
                run += nw
                r += 1
            _lanes_add_run(x + rows[r] - (run - nw) + w0, run, k % LANES, lanes, pw)
            k += run
        else:
            for j in range(nw):
                lanes[(k + j) % LANES] += _raise(x[rows[r] + w0 + j * sw], pw)
            k += nw
        r += 1
    for j in range(LANES):
        total += lanes[j]
    return total


cdef inline void _quad(const pool_t* src, pool_t* dst, pool_t* top, pool_t* bottom,
                       Py_ssize_t o, Py_ssize_t right, pool_t div, sum_op_t op) noexcept nogil:
    """One whole 2x2 window of a sum, cells top[0], top[right], bottom[0], bottom[right],
    output o.  Forward: dst[o] = (sum of the cells raised to p, in scan order)^(1/p) /
    div; backward (Spread): every cell = src[o] / div."""
    cdef pool_t s
    # the casts: the debug build (no cdivision) divides integers as Python does
    if sum_op_t is Spread:
        s = <pool_t>(src[o] / div)
        top[0] = s
        top[right] = s
        bottom[0] = s
        bottom[right] = s
    else:
        s = 0
        s += _raise(top[0], op)
        s += _raise(top[right], op)
        s += _raise(bottom[0], op)
        s += _raise(bottom[right], op)
        dst[o] = <pool_t>(_root(s, op) / div)


# ----------------------------------------------------------------------------- any kind
cdef inline void _plane_group(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t n_planes,
                              Py_ssize_t S_in, Py_ssize_t S_out, const Windows* w,
                              Py_ssize_t* rows, kind_t kind) noexcept nogil:
    """PATH_PLANE_GROUP: n_planes planes walked side by side, for planes with a few
    large windows (global and coarse adaptive pooling).  Each plane keeps its own
    running extreme (with its winner's code, if ``codes`` is not NULL) or sum,
    updated in scan order, but the planes' independent updates interleave
    instead of waiting on one another.  Sums of more than SCAN_SUM_MAX cells have
    LANES independent chains already (_window_sum): their planes go one at a time."""
    cdef Py_ssize_t r, j, s, q
    cdef pool_t acc[MAX_GROUP]
    cdef int code[MAX_GROUP]
    cdef int cell = 0, first = 0
    cdef pool_t flip = _kind_flip(x, kind), div = 1
    cdef WindowCursor cur = _before_first_window()
    while _next_window(w, rows, &cur):
        if kind_t is KeepMax or kind_t is KeepMin:
            first = _first_code(codes, cur.nw, rows[0] + cur.w0 if cur.nw > 0 else 0)
            for q in range(n_planes):
                acc[q] = _lowest(x)
                code[q] = first
        else:
            div = <pool_t>_divisor(w, cur.od, cur.oh, cur.ow)
            if cur.nr * cur.nw > SCAN_SUM_MAX:
                for q in range(n_planes):
                    # (the cast only types integer pool_t, never used with sums)
                    out[q * S_out + cur.o] = <pool_t>(_root(_window_sum(x + q * S_in, rows,
                                                                        cur.nr, cur.w0, cur.nw,
                                                                        w.step[2], kind),
                                                            kind) / div)
                continue
            for q in range(n_planes):
                acc[q] = 0
        for r in range(cur.nr):
            for j in range(cur.nw):
                s = rows[r] + cur.w0 + j * w.step[2]
                if kind_t is KeepMax or kind_t is KeepMin:
                    cell = <int>(r * cur.nw + j) if code_t is uint8_t else <int>s
                    for q in range(n_planes):
                        _take(_key(x[q * S_in + s], flip), cell, &acc[q], &code[q])
                else:
                    for q in range(n_planes):
                        acc[q] += _raise(x[q * S_in + s], kind)
        for q in range(n_planes):
            if kind_t is KeepMax or kind_t is KeepMin:
                out[q * S_out + cur.o] = _key(acc[q], flip)
                if codes != NULL:
                    codes[q * S_out + cur.o] = <code_t>code[q]
            else:
                out[q * S_out + cur.o] = <pool_t>(_root(acc[q], kind) / div)
