"""The base of every error csre_models raises on bad input (a configuration, a checkpoint, score files):
the command line reports any of them as one line. A ``ValueError``, as each of them was before it had a
common base, so ``except ValueError`` keeps working."""


class CSREModelsError(ValueError):
    """An input csre_models cannot use, with a one-line reason."""


class ConfigError(CSREModelsError):
    """A configuration that cannot run, with a one-line reason."""
