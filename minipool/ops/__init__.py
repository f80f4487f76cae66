"""Differentiable ops, one Function per op, grouped by family.

Each op validates its arguments, runs the forward (NumPy or a Cython kernel),
saves what its backward needs and returns a Tensor.  The public names are
gathered in ``minipool.nn.functional``.
"""
