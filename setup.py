"""Build minipool's Cython kernels.

Every ``minipool/_kernels/*.pyx`` becomes an extension with the same compiler
directives and flags.  OpenMP is detected by compiling *and running* a tiny
program; without it the kernels build serially (same results, one thread).

Environment switches:
  MINIPOOL_DEBUG_BUILD=1   bounds/wraparound/initialisation checks on, -O1 -g
  MINIPOOL_DISABLE_OPENMP=1  build serial kernels even if OpenMP works
  MINIPOOL_BUILD_ONLY=a,b  build only minipool/_kernels/{a,b}.pyx (development)
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("MINIPOOL_DEBUG_BUILD", "0") not in ("", "0")

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n);
        return n > 0 ? 0 : 1;
    }
    """
)


def detect_openmp(cc):
    """Return the OpenMP flag list if a test program compiles, links and runs."""
    if os.environ.get("MINIPOOL_DISABLE_OPENMP", "0") not in ("", "0"):
        return None
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        exe = os.path.join(tmp, "omp_test")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        try:
            subprocess.run(cc.split() + flags + [src, "-o", exe], check=True,
                           capture_output=True)
            subprocess.run([exe], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return None
    return flags


def compiler_command():
    return os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"


CC = compiler_command()
OPENMP_FLAGS = detect_openmp(CC)
if OPENMP_FLAGS is None:
    bar = "!" * 72
    sys.stderr.write(
        f"\n{bar}\nWARNING: OpenMP was not found (or disabled). minipool builds SERIAL\n"
        f"kernels: results are identical, but only one thread is used.\n{bar}\n\n"
    )

# -ffp-contract=off: a*b+c is never fused behind our back (kernels fuse with an
# explicit fma where PyTorch does; see minipool/_kernels/antialias_loops.h).
COMPILE_ARGS = (["-O1", "-g"] if DEBUG else ["-O3"]) + ["-ffp-contract=off"] + (OPENMP_FLAGS or [])
LINK_ARGS = list(OPENMP_FLAGS or [])

# Code placement for the pooling kernels: every function starts on a 64-byte line, so
# where a hot loop falls relative to those lines depends on its own function's code
# only, not on how long the functions before it happen to be.  Without it, an edit
# anywhere in a module moved unrelated loops and their timings (the same machine code
# ran 120 or 153 us by its start address mod 64).  Measured across bench_pooling's
# rows before it was adopted; the other kernels keep GCC's default placement
# (blur_pool too: its NHWC forward measured 1.10x slower with it).  Loops start on a
# 64-byte line too: within a function, a hot loop's offset still moved with any edit
# above it (global avg pooling NHWC ran 1.12x slower with its add loop straddling a
# line; max pooling's LeNet NHWC backward 1.2x), and 64 held both against the
# pre-restructure kernels where 32 fixed one and not the other.  Except in pool_sum:
# there, padding every loop to a line put the NOPs in front of the short loops
# entered once per window cell (avg 3x3 s1 backward, LeNet NHWC: 9% of the samples,
# 1.08x the time without it), and the one loop that needed the line (global average
# pooling's lane pass) is now unrolled whole instead (_lanes_add_cells).
PLACED_KERNELS = ("pool_",)
PLACEMENT_ARGS = ["-falign-functions=64", "-falign-loops=64"]
UNALIGNED_LOOPS = ("pool_sum",)

# Per module: optim_steps' loops call sqrt, which sets errno on a negative argument unless
# told not to, and that call keeps GCC from vectorising them.  No result changes (sqrt is
# correctly rounded either way); minipool never reads errno.
MODULE_ARGS = {"optim_steps": ["-fno-math-errno"]}


def placement_args(module):
    """Code placement flags for kernel module ``module`` (see above)."""
    if not module.startswith(PLACED_KERNELS):
        return []
    if module in UNALIGNED_LOOPS:
        return [a for a in PLACEMENT_ARGS if not a.startswith("-falign-loops")]
    return PLACEMENT_ARGS

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}


def write_build_info():
    """Record what was built so ``minipool.show_config()`` can report it."""
    info = {
        "openmp": OPENMP_FLAGS is not None,
        "compiler": CC,
        "compile_args": COMPILE_ARGS,
        "link_args": LINK_ARGS,
        "debug_build": DEBUG,
        "cython_directives": DIRECTIVES,
    }
    with open(os.path.join(HERE, "minipool", "_build_info.py"), "w") as f:
        f.write("# Generated by setup.py; do not edit.\n")
        f.write(f"BUILD_INFO = {info!r}\n")


class BuildExt(build_ext):
    def run(self):
        write_build_info()
        super().run()


def extensions():
    # MINIPOOL_BUILD_ONLY=pooling,upsampling rebuilds just those (faster iteration).
    only = {s for s in os.environ.get("MINIPOOL_BUILD_ONLY", "").split(",") if s}
    exts = []
    # Every kernel module is rebuilt when a C header changes: headers include one another
    # (conv2d_direct.h -> conv2d_tiles.h -> cpu_features.h), which Cython does not follow.
    headers = sorted(glob.glob(os.path.join("minipool", "_kernels", "*.h")))
    for pyx in sorted(glob.glob(os.path.join("minipool", "_kernels", "*.pyx"))):
        name = pyx[:-4].replace(os.sep, ".")
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        exts.append(
            Extension(
                name,
                [pyx],
                depends=headers,
                include_dirs=[numpy.get_include(), os.path.join("minipool", "_kernels")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=(COMPILE_ARGS + placement_args(name.rsplit(".", 1)[1])
                                    + MODULE_ARGS.get(name.rsplit(".", 1)[1], [])),
                extra_link_args=LINK_ARGS,
            )
        )
    # Debug C sources live apart so switching builds never reuses the wrong .c file.
    build_dir = os.path.join("build", "cython-debug") if DEBUG else None
    return cythonize(exts, compiler_directives=DIRECTIVES, build_dir=build_dir)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
