"""A bounded cache of freed array memory, used as NumPy's allocator inside minipool's ops.

Why: a training step allocates and frees the same few-megabyte activations and
gradients every step.  glibc gives such blocks back to the operating system
(unmaps them or trims the heap), so the next step takes a page fault for each
4 KiB it writes: ~850 faults per LeNet-5 step at batch 64, about a fifth of
the step's CPU time.  Changing glibc's thresholds would change it for the
whole process; instead minipool hands NumPy this allocator (``PyDataMem_Handler``,
NumPy's per-context allocator hook) only while its own ops, backward passes and
optimiser steps run.  Arrays keep the allocator that made them, so they come
back here when freed, whoever frees them; the user's own NumPy arrays never
pass through it.

Rules: blocks of at least ``MIN_BYTES`` are kept on free, up to ``limit`` bytes
and ``MAX_BLOCKS`` blocks in all, the oldest given back to the system first;
a request takes a kept block of exactly its size, else the system's
``malloc``.  Every block carries a 16-byte header with its true size (so a
block is only ever reused for requests it can hold, whatever size NumPy passes
on free) and stays 16-byte aligned like glibc's.
"""
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport uint8_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memset, strncpy

cimport numpy as cnp

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr, size_t size) noexcept nogil
    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator
    object PyDataMem_SetHandler(object handler)

cdef extern from "pthread.h" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)

cdef enum:
    HEADER = 16  # bytes before each block: its usable size (keeps glibc's 16-byte alignment)
    MAX_BLOCKS = 128
MIN_BYTES = 1 << 16  # smaller blocks are cheap for malloc and rarely unmapped

cdef size_t _min_bytes = MIN_BYTES
cdef size_t _limit = 0          # bytes the cache may hold (0: keep nothing)
cdef size_t _held = 0           # bytes it holds now
cdef Py_ssize_t _count = 0
cdef void* _blocks[MAX_BLOCKS]  # oldest first; each points at its header
cdef size_t _sizes[MAX_BLOCKS]
cdef size_t _hits = 0
cdef size_t _misses = 0
cdef pthread_mutex_t _lock
pthread_mutex_init(&_lock, NULL)


cdef inline void* _user(void* base) noexcept nogil:
    return <char*>base + HEADER


cdef inline void* _base(void* ptr) noexcept nogil:
    return <char*>ptr - HEADER


cdef void _remove(Py_ssize_t i) noexcept nogil:
    """Drop entry ``i`` from the table (caller holds the lock)."""
    global _count, _held
    cdef Py_ssize_t j
    _held -= _sizes[i]
    for j in range(i, _count - 1):
        _blocks[j] = _blocks[j + 1]
        _sizes[j] = _sizes[j + 1]
    _count -= 1


cdef void* _take(size_t size) noexcept nogil:
    """A kept block of exactly ``size`` usable bytes (newest first), or NULL."""
    global _hits, _misses
    cdef Py_ssize_t i
    cdef void* found = NULL
    if size < _min_bytes or _limit == 0:
        return NULL
    pthread_mutex_lock(&_lock)
    i = _count - 1
    while i >= 0:
        if _sizes[i] == size:
            found = _blocks[i]
            _remove(i)
            break
        i -= 1
    if found != NULL:
        _hits += 1
    else:
        _misses += 1
    pthread_mutex_unlock(&_lock)
    return found


cdef void* _fresh(size_t size) noexcept nogil:
    cdef void* base
    if size > (<size_t>-1) - HEADER:
        return NULL
    base = malloc(size + HEADER)
    if base == NULL:
        return NULL
    (<size_t*>base)[0] = size
    return base


cdef void* _malloc(void* ctx, size_t size) noexcept nogil:
    cdef void* base = _take(size)
    if base == NULL:
        base = _fresh(size)
        if base == NULL:
            return NULL
    return _user(base)


cdef void* _calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef size_t size
    cdef void* base
    if elsize != 0 and nelem > (<size_t>-1) / elsize:
        return NULL
    size = nelem * elsize
    base = _take(size)
    if base != NULL:
        memset(_user(base), 0, size)
        return _user(base)
    if size > (<size_t>-1) - HEADER:
        return NULL
    base = calloc(1, size + HEADER)  # fresh pages from calloc are zero without a memset
    if base == NULL:
        return NULL
    (<size_t*>base)[0] = size
    return _user(base)


cdef void* _realloc(void* ctx, void* ptr, size_t new_size) noexcept nogil:
    cdef void* base
    if ptr == NULL:
        return _malloc(ctx, new_size)
    if new_size > (<size_t>-1) - HEADER:
        return NULL
    base = realloc(_base(ptr), new_size + HEADER)
    if base == NULL:
        return NULL
    (<size_t*>base)[0] = new_size
    return _user(base)


cdef void _free(void* ctx, void* ptr, size_t size) noexcept nogil:
    """Keep the block if it is large enough and fits, dropping the oldest to make room."""
    global _count, _held
    cdef void* base
    cdef size_t true_size
    if ptr == NULL:
        return
    base = _base(ptr)
    true_size = (<size_t*>base)[0]  # NumPy's ``size`` is not trusted: the header is the truth
    if true_size >= _min_bytes and true_size <= _limit:
        pthread_mutex_lock(&_lock)
        while _count > 0 and (_held + true_size > _limit or _count == MAX_BLOCKS):
            free(_blocks[0])
            _remove(0)
        if _held + true_size <= _limit:
            _blocks[_count] = base
            _sizes[_count] = true_size
            _count += 1
            _held += true_size
            base = NULL
        pthread_mutex_unlock(&_lock)
    if base != NULL:
        free(base)


cdef PyDataMem_Handler _handler
strncpy(_handler.name, b"minipool_memory_cache", 127)
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = _malloc
_handler.allocator.calloc = _calloc
_handler.allocator.realloc = _realloc
_handler.allocator.free = _free

_capsule = PyCapsule_New(&_handler, "mem_handler", NULL)


def activate():
    """Make this allocator NumPy's for the current context; returns the previous handler
    (pass it to :func:`restore`)."""
    return PyDataMem_SetHandler(_capsule)


def restore(previous):
    PyDataMem_SetHandler(previous)


def set_limit(size_t limit):
    """Hold at most ``limit`` bytes of freed blocks (0: hold none, and free what is held)."""
    global _limit
    pthread_mutex_lock(&_lock)
    _limit = limit
    while _count > 0 and _held > _limit:
        free(_blocks[0])
        _remove(0)
    pthread_mutex_unlock(&_lock)


def clear():
    """Give every kept block back to the system."""
    pthread_mutex_lock(&_lock)
    while _count > 0:
        free(_blocks[0])
        _remove(0)
    pthread_mutex_unlock(&_lock)


def info():
    """``{"limit", "held", "blocks", "hits", "misses"}`` (bytes, counts since import)."""
    return {"limit": _limit, "held": _held, "blocks": _count, "hits": _hits, "misses": _misses}
