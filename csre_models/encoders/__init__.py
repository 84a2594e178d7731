"""Skeleton encoders. Each module registers its constructor with :func:`register_encoder`."""
from ._registry import EncoderCard, create_encoder, encoder_card, list_encoders, register_encoder
from . import agcn  # noqa: F401  registers "agcn"
from . import blockgcn  # noqa: F401  registers "blockgcn"
from . import ctrgcn  # noqa: F401  registers "ctrgcn"
from . import hcn  # noqa: F401  registers "hcn"
from . import hyperformer  # noqa: F401  registers "hyperformer"

__all__ = ["EncoderCard", "create_encoder", "encoder_card", "list_encoders", "register_encoder"]
