"""Hyperformer (Zhou et al., 2022): hypergraph self-attention for skeleton action recognition.

Equivalent to ``model/Hyperformer.py`` of ZhouYuxuanYX/Hyperformer (``Model`` with ``graph_args=
{'labeling_mode': 'spatial'}`` and the ``joint_label`` of the official configs): same parameters,
state-dict keys, initialisation and logits. The encoder of the official CSRE release is this model too.

Ten blocks ``relu(tcn1(vit1(x)) + residual(x))``, all ``24 * heads = 216`` channels wide, with CTR-GCN's
multi-scale temporal convolution as ``tcn1``. The spatial part ``vit1`` is self-attention over the joints
of each frame, without a feed-forward layer::

    e      = pe_proj(mean of x over the joints of each body part)[part of each joint]   # hyperedges
    vit1   = skip(x) + proj((alpha * softmax(scores) + outer) @ v)    with q, k, v from LayerNorm(x)
    scores = (q k^T + q e^T + q rpe[hop(i, j)] + w1 e^T) / sqrt(head_dim)

``hop(i, j)`` is the shortest-path distance between joints ``i`` and ``j`` in the skeleton graph (NTU:
the ``hands_fork`` edges of :mod:`skeldata.layouts`, NW-UCLA: its only graph); ``rpe`` holds one learnt
vector per distance. ``alpha`` starts at 0 and ``outer`` at one identity matrix per head, so at
initialisation every block passes each joint's ``v`` through unchanged.

The body parts (hyperedges) are not a property of the graph: they are the ``joint_label`` lists of the
official configs, kept here per layout (:data:`BODY_PARTS`).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from skeldata.layouts import get_layout

from ._blocks import TEN_BLOCK_STRIDES, GraphEncoder, MultiScaleTemporalConv, graph_temporal_blocks
from ._graph import HOP_GRAPH_VARIANTS, hop_distances, spatial_adjacency
from ._registry import register_encoder

#: Body parts (hyperedges) by joint name, in the order of their index in the official ``joint_label``.
BODY_PARTS: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "ntu25": (
        ("SpineBase", "HandTipLeft", "HandTipRight"),
        ("WristLeft", "HandLeft", "WristRight", "HandRight", "SpineShoulder", "ThumbLeft", "ThumbRight"),
        ("Neck", "Head", "ShoulderLeft", "ElbowLeft", "ShoulderRight", "ElbowRight", "HipLeft", "HipRight"),
        ("KneeLeft", "AnkleLeft", "FootLeft", "KneeRight", "AnkleRight", "FootRight"),
        ("SpineMid",),
    ),
    "ucla20": (
        ("HipCenter", "Spine", "ShoulderCenter", "Head"),
        ("ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
         "ShoulderRight", "ElbowRight", "WristRight", "HandRight"),
        ("HipLeft", "KneeLeft", "AnkleLeft", "FootLeft", "HipRight", "KneeRight", "AnkleRight", "FootRight"),
    ),
}

#: The NW-UCLA bone streams' body parts (``joint_label`` of the official ``config/ucla/bone*.yaml``,
#: ``[0,0,0,0,0,1,1,1,0,1,1,1,0,2,2,2,0,2,2,2]``): the ``body_parts`` option of those recipes.
UCLA_BONE_BODY_PARTS: Tuple[Tuple[str, ...], ...] = (
    ("HipCenter", "Spine", "ShoulderCenter", "Head", "ShoulderLeft", "ShoulderRight", "HipLeft", "HipRight"),
    ("ElbowLeft", "WristLeft", "HandLeft", "ElbowRight", "WristRight", "HandRight"),
    ("KneeLeft", "AnkleLeft", "FootLeft", "KneeRight", "AnkleRight", "FootRight"),
)

#: Channels per attention head; the width of every block is ``HEAD_DIM * num_heads``.
HEAD_DIM = 24
#: Groups of the attention's output projection (fixed in the official code, whatever the head count).
PROJECTION_GROUPS = 6


def body_part_labels(layout: str, parts: Sequence[Sequence[str]]) -> torch.Tensor:
    """Index of the body part of every joint of ``layout``, from part lists of joint names."""
    joint_names = get_layout(layout).joint_names
    labels = torch.full((len(joint_names),), -1, dtype=torch.long)
    for part, names in enumerate(parts):
        for name in names:
            labels[joint_names.index(name)] = part
    unassigned = [joint_names[i] for i in torch.nonzero(labels < 0).flatten().tolist()]
    if unassigned:
        raise ValueError(f"joints of {layout} in no body part: {unassigned}")
    return labels


class HypergraphSelfAttention(nn.Module):
    """Multi-head self-attention over the joints of each frame, biased by hop distance and hyperedges.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (``num_heads`` heads of equal width).
        hops: ``(V, V)`` long hop distances between joints.
        num_heads: number of heads.
    """

    def __init__(self, in_channels: int, out_channels: int, hops: torch.Tensor, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = out_channels // num_heads
        self.scale = self.head_dim ** -0.5
        num_joints = hops.shape[0]
        self.register_buffer("hops", hops, persistent=False)
        self.rpe = nn.Parameter(torch.zeros(int(hops.max()) + 1, out_channels))
        self.w1 = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.outer = nn.Parameter(torch.eye(num_joints).repeat(num_heads, 1, 1))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.kv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size=1, bias=False)
        self.q = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.proj = nn.Conv2d(out_channels, out_channels, kernel_size=1, groups=PROJECTION_GROUPS)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H * d, T, V) -> (N, T, H, V, d)``."""
        n, _, frames, joints = x.shape
        return x.view(n, self.num_heads, self.head_dim, frames, joints).permute(0, 3, 1, 4, 2)

    def hop_bias(self, query: torch.Tensor) -> torch.Tensor:
        """``q_i . rpe[hop(i, j)]`` for every query joint ``i`` and key joint ``j``: ``(N, T, H, V, V)``."""
        per_hop = self.rpe.view(-1, self.num_heads, self.head_dim).permute(1, 2, 0)  # (H, d, hops)
        query_per_hop = query @ per_hop  # (N, T, H, V, hops)
        return query_per_hop.gather(-1, self.hops.expand(*query_per_hop.shape[:-1], -1))

    def forward(self, x: torch.Tensor, hyperedges: torch.Tensor) -> torch.Tensor:
        """Attend over joints. ``x`` ``(N, C_in, T, V)``; ``hyperedges`` ``(N, C_out, T, V)``, the feature
        of each joint's body part. Returns ``(N, C_out, T, V)``."""
        n, _, frames, joints = x.shape
        query = self.split_heads(self.q(x))
        key, value = (self.split_heads(part) for part in self.kv(x).chunk(2, dim=1))
        edge = self.split_heads(hyperedges)
        edge_bias = torch.einsum("hc,nthvc->nthv", self.w1, edge).unsqueeze(-2)
        scores = query @ (key + edge).transpose(-2, -1) + self.hop_bias(query) + edge_bias
        attention = torch.softmax(scores * self.scale, dim=-1)
        out = (self.alpha * attention + self.outer) @ value  # (N, T, H, V, d)
        return self.proj(out.permute(0, 2, 4, 1, 3).reshape(n, -1, frames, joints))


class HypergraphAttentionUnit(nn.Module):
    """``skip(x) + attn(LayerNorm(x), e)`` with ``e`` the projected mean feature of each joint's body part.

    Args:
        in_channels, out_channels, hops, num_heads: as :class:`HypergraphSelfAttention`.
        part_labels: ``(V,)`` body-part index of every joint.
    """

    def __init__(self, in_channels: int, out_channels: int, hops: torch.Tensor, num_heads: int,
                 part_labels: torch.Tensor):
        super().__init__()
        self.norm1 = nn.LayerNorm(in_channels)
        self.attn = HypergraphSelfAttention(in_channels, out_channels, hops, num_heads)
        self.skip_proj = (nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
                          if in_channels != out_channels else nn.Identity())
        self.pe_proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        membership = F.one_hot(part_labels).float()  # (V, parts)
        self.register_buffer("part_mean", membership / membership.sum(dim=0), persistent=False)
        self.register_buffer("part_to_joint", membership.t().contiguous(), persistent=False)

    def hyperedges(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, T, V) -> (N, C_out, T, V)``: each joint gets the projected mean of its body part."""
        return self.pe_proj(x @ self.part_mean) @ self.part_to_joint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.skip_proj(x) + self.attn(normed, self.hyperedges(x))


class Hyperformer(GraphEncoder):
    """Hyperformer on a joint layout; see the module docstring.

    Args:
        num_class, layout, num_person, window, in_channels: as :class:`SkeletonEncoder`.
        num_heads: attention heads per block (the official configs use 9: 216 channels).
        body_parts: joint names of each body part (hyperedge); default :data:`BODY_PARTS` of ``layout``.
        drop_out: dropout before the classifier (the official configs use 0).
    """

    def __init__(self, num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64,
                 in_channels: int = 3, num_heads: int = 9,
                 body_parts: Optional[Sequence[Sequence[str]]] = None, drop_out: float = 0.0):
        adjacency = spatial_adjacency(layout, HOP_GRAPH_VARIANTS[layout])
        hops = torch.from_numpy(hop_distances(adjacency))
        part_labels = body_part_labels(layout, BODY_PARTS[layout] if body_parts is None else body_parts)
        width = HEAD_DIM * num_heads
        blocks = graph_temporal_blocks(
            in_channels,
            make_gcn=lambda cin, cout: HypergraphAttentionUnit(cin, cout, hops, num_heads, part_labels),
            make_tcn=lambda channels, stride: MultiScaleTemporalConv(channels, channels, kernel_size=5,
                                                                     stride=stride, dilations=(1, 2)),
            widths=(width,) * len(TEN_BLOCK_STRIDES), first_residual=True, spatial_name="vit1")
        super().__init__(blocks, num_class, layout, num_person, window, in_channels, drop_out)


def _recipe_options(layout: str, stream: str) -> Dict[str, object]:
    """Hyperformer's NW-UCLA bone recipes group the joints into other body parts."""
    if layout == "ucla20" and stream.startswith("bone"):
        return {"body_parts": [list(part) for part in UCLA_BONE_BODY_PARTS]}
    return {}


@register_encoder("hyperformer", published=2022,
                  feeders={"ntu25": "spine-relative", "ucla20": "spine-relative"}, recipe_options=_recipe_options)
def hyperformer(num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64,
                **kwargs) -> Hyperformer:
    """Hyperformer (window 64 on NTU, 52 on NW-UCLA in the official configs)."""
    return Hyperformer(num_class, layout, num_person, window, **kwargs)
