"""csre_models: skeleton encoders trained with CSRE (Contrastive Spatiotemporal Representation Enhancement)."""
from skeldata._version import __version__  # one distribution, one version

from .encoders import create_encoder, list_encoders

__all__ = ["create_encoder", "list_encoders", "__version__"]
