"""skeldata: NTU RGB+D 60/120 and NW-UCLA skeletons to one chunked HDF5 store per data set."""
__version__ = "0.1.0"
