"""Store-backed training data: :class:`SkeletonDataset` and the reference feeders' transforms
(:mod:`csre_models.data.transforms`)."""
from .dataset import SkeletonDataset, check_store

__all__ = ["SkeletonDataset", "check_store"]
