"""skeldata: NTU RGB+D 60/120 and NW-UCLA skeletons to one chunked HDF5 store per data set.

    import skeldata
    store = skeldata.open_store("ntu60.h5")
    store.sequence(0, stream="bone")        # float32 (T, bodies, joints, 3)
    store.split("xsub", "train")            # int64 indices, in the published order
"""
from ._version import __version__

__all__ = ["open_store", "__version__"]


def __getattr__(name):
    # Imported on first use, so that `import skeldata` (and the parsing workers) stay light.
    if name == "open_store":
        from .store import open_store
        return open_store
    raise AttributeError(f"module 'skeldata' has no attribute {name!r}")
