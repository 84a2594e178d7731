"""Build hook for the optional C parts of skeldata and csre_models (everything else is in pyproject.toml).

Every extension is optional: where they cannot be compiled (no C compiler), installation still
succeeds and the packages fall back to pure Python, numpy and torch, which give the same values, only slower:

- ``skeldata.formats._ntu_c``, the reader of .skeleton files (else the numpy reader);
- ``skeldata._lzf_c``, the shuffle + LZF chunk encoder (else HDF5's own filters encode each chunk);
- ``csre_models._select_c``, the CSRE loss's row-wise top-k and distinct draws (else torch's kernels).
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("skeldata.formats._ntu_c", ["skeldata/formats/_ntu_c.c"], optional=True,
              extra_compile_args=["-O2", "-ffp-contract=off"]),  # float32 sums as numpy's, no fused multiply-add
    Extension("skeldata._lzf_c", ["skeldata/_lzf_c.c"], optional=True, extra_compile_args=["-O2"]),
    Extension("csre_models._select_c", ["csre_models/_select_c.c"], optional=True, extra_compile_args=["-O2"]),
])
