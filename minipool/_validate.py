"""Argument checks shared by layers, loaders and schedulers: one wording everywhere."""
import math
import numbers

__all__ = ["positive_int", "check_parameter_shape", "MAX_PARAMETER_ELEMENTS"]

# A single weight larger than this (8 GiB of float32) is far beyond any model minipool is
# for; refusing it up front beats NumPy's MemoryError that names no argument.
MAX_PARAMETER_ELEMENTS = 2 ** 31 - 1


def positive_int(value, name, where):
    """``value`` as an int >= 1, or a ValueError naming ``where: name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def check_parameter_shape(shape, names, where):
    """Refuse a parameter of more than MAX_PARAMETER_ELEMENTS elements, naming the sizes."""
    count = math.prod(int(s) for s in shape)
    if count > MAX_PARAMETER_ELEMENTS:
        raise ValueError(f"{where}: {names} give a weight of shape {tuple(shape)} = {count} "
                         f"elements, more than the limit of {MAX_PARAMETER_ELEMENTS}")
    return tuple(int(s) for s in shape)
