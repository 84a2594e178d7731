"""Build hook for the optional C reader of .skeleton files (everything else is in pyproject.toml).

The extension is optional: where it cannot be compiled (no C compiler), installation still
succeeds and skeldata uses its numpy reader, which gives the same values, only slower.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("skeldata.formats._ntu_c", ["skeldata/formats/_ntu_c.c"], optional=True,
                             extra_compile_args=["-O2"])])
