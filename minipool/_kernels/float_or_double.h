/* One name for an entry point built for float and for double (NAME_f, NAME_d), so
 * that Cython declares and calls the pair once, from `floating` code:
 *
 *     #define mp_x(p, ...) MP_FLOAT_OR_DOUBLE(p, mp_x_f, mp_x_d)(p, __VA_ARGS__)
 *
 * C11's _Generic picks by the type of the first pointer argument; a pointer to
 * anything else does not compile.  Cython declares mp_x with void pointers and
 * passes the typed pointers through unchanged, so C still checks every argument
 * against the real float or double prototype. */
#ifndef MINIPOOL_FLOAT_OR_DOUBLE_H
#define MINIPOOL_FLOAT_OR_DOUBLE_H

#define MP_FLOAT_OR_DOUBLE(p, F, D) \
    _Generic((p), float *: (F), const float *: (F), double *: (D), const double *: (D))

#endif
