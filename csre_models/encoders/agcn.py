"""2s-AGCN (Shi et al., CVPR 2019): two-stream adaptive graph convolution, one stream's network.

Equivalent to ``model/agcn.py`` of lshiwjx/2s-AGCN (``Model`` with ``graph_args={'labeling_mode':
'spatial'}``): same parameters, state-dict keys, initialisation and logits.

Each graph convolution sums, over the three subsets ``i`` of the spatial labelling (:mod:`._graph`),
``conv_d(x @ (A[i] + PA[i] + C_i))`` where ``A`` is the fixed normalised graph (a buffer, not in the
state dict, as in the official code), ``PA`` a learnable offset starting at 1e-6 and ``C_i`` a
per-sample joint similarity::

    C_i = softmax_over_rows( conv_a(x)^T conv_b(x) / (C_inter * T) )   # (N, V, V)

with ``conv_a(x)`` flattened to ``(N, V, C_inter*T)`` and ``conv_b(x)`` to ``(N, C_inter*T, V)``.
Temporal modelling is a single 9-frame convolution per block.

The official repository covers NTU only. On NW-UCLA (``layout='ucla20'``) this builds the same network
on CTR-GCN's NW-UCLA graph (the ``ucla_nonnative`` setting of the reference figures).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._blocks import (GraphEncoder, TemporalConv, channel_shortcut, conv_branch_init, graph_temporal_blocks,
                      init_graph_conv_weights)
from ._graph import spatial_adjacency
from ._registry import register_encoder

class AdaptiveGraphConv(nn.Module):
    """2s-AGCN's adaptive graph convolution over the subsets of ``adjacency`` ``(K, V, V)``."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, embed_factor: int = 4):
        super().__init__()
        num_subsets = adjacency.shape[0]
        self.embed_channels = out_channels // embed_factor
        self.register_buffer("A", adjacency.clone(), persistent=False)
        self.PA = nn.Parameter(torch.full_like(adjacency, 1e-6))
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, self.embed_channels, 1) for _ in range(num_subsets))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, self.embed_channels, 1) for _ in range(num_subsets))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(num_subsets))
        self.down = channel_shortcut(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        init_graph_conv_weights(self, self.bn)
        for conv in self.conv_d:
            conv_branch_init(conv, num_subsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        adjacency = self.A + self.PA
        flat = x.reshape(n, c * t, v)
        y = 0
        for i, (conv_a, conv_b, conv_d) in enumerate(zip(self.conv_a, self.conv_b, self.conv_d)):
            a = conv_a(x).permute(0, 3, 1, 2).reshape(n, v, self.embed_channels * t)
            b = conv_b(x).reshape(n, self.embed_channels * t, v)
            similarity = torch.softmax(torch.matmul(a, b) / a.shape[-1], dim=-2)
            y = y + conv_d(torch.matmul(flat, similarity + adjacency[i]).view(n, c, t, v))
        return self.relu(self.bn(y) + self.down(x))


class AGCN(GraphEncoder):
    """2s-AGCN on a joint layout; see the module docstring.

    Args:
        num_class, layout, num_person, window, in_channels: as :class:`SkeletonEncoder` (the official
            NTU data pads every sample to 300 frames).
    """

    def __init__(self, num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 300,
                 in_channels: int = 3):
        adjacency = torch.from_numpy(spatial_adjacency(layout))
        blocks = graph_temporal_blocks(
            in_channels,
            make_gcn=lambda cin, cout: AdaptiveGraphConv(cin, cout, adjacency),
            make_tcn=lambda width, stride: TemporalConv(width, width, kernel_size=9, stride=stride))
        super().__init__(blocks, num_class, layout, num_person, window, in_channels)


@register_encoder("agcn", published=2019, stgcn_feeder="whole", stgcn_window=300)
def agcn(num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 300, **kwargs) -> AGCN:
    """2s-AGCN (window 300 on NTU, as its own preprocessing pads every sample to 300 frames)."""
    return AGCN(num_class, layout, num_person, window, **kwargs)
