"""csre_models: skeleton encoders trained with CSRE (Contrastive Spatiotemporal Representation Enhancement)."""
from .encoders import create_encoder, list_encoders

__version__ = "0.1.0"
__all__ = ["create_encoder", "list_encoders", "__version__"]
