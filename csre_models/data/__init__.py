"""Store-backed training data: :class:`SkeletonDataset` and the reference feeders' transforms
(:mod:`csre_models.data.transforms`)."""
from .dataset import SkeletonDataset

__all__ = ["SkeletonDataset"]
