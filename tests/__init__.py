"""minipool's test suite, one subpackage per area (see tests/README.md).

A package tree, so shared modules are imported by their full name from the
checkout root (``from tests.references import pooling_reference``): pytest puts
the root on ``sys.path`` (the first folder above ``tests`` without an
``__init__.py``), no file changes ``sys.path`` itself, and two areas may hold
files of the same name.
"""
