"""matplotlib for the figures of ``skeldata stats --plot``, ``skeldata show`` and csre_models' reports:
imported on first use, since it is an optional extra."""
from __future__ import annotations

from .errors import SkeldataError


def import_pyplot(purpose: str):
    """``matplotlib.pyplot`` on the file-only Agg backend, or a :class:`SkeldataError` telling how to
    install it (``purpose`` names what needs it, such as ``--plot``)."""
    try:
        import matplotlib
    except ImportError:
        raise SkeldataError(f"{purpose} needs matplotlib: pip install 'skeldata[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
