"""The version of the distribution (skeldata and csre_models ship together, so they share it); read by
``pyproject.toml``, both packages' ``__version__`` and the writer attributes of every file skeldata writes."""
__version__ = "0.1.0"
