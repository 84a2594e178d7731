"""BlockGCN (Zhou et al., CVPR 2024): block-diagonal graph convolution with hop and topology encodings.

Equivalent to ``model/BlockGCN.py`` of ZhouYuxuanYX/BlockGCN (``Model`` with ``graph_args={'labeling_mode':
'spatial'}``): same parameters, state-dict keys, initialisation and logits (with the default
``faithful=True``, see below).

Every joint's coordinates are embedded by a linear layer plus a learnt per-joint vector, normalised by a
BatchNorm over (person, joint, channel), and passed through ten blocks ``relu(tcn1(gcn1(x)) + residual(x))``
(128 channels in ``l1``-``l4``, 256 from ``l5``; ``l5`` and ``l8`` halve the frames; CTR-GCN's multi-scale
temporal convolution as ``tcn1``). Before block ``l{i+1}`` a topology bias ``t{i}`` of the skeleton's shape
is added to every frame and joint.

BlockGC (``gcn1``, :class:`BlockGraphConv`): the channels are split into 8 groups and each group has its
own ``V x V`` topology (a block-diagonal graph convolution). Three branches, each::

    W = colnorm(fc1[i]) + colnorm(rpe[i][:, hop])        # (8, V, V); colnorm: divide columns by L2 norm
    z = fc2[i](per group h: x_h @ W[h])                  # fc2[i]: 1x1 conv, 8 groups

(computed as one einsum over all branches and one grouped convolution holding the three ``fc2``).

``fc1`` starts at identity matrices and ``rpe`` (one value per hop distance) at zero; ``hop(i, j)`` is the
shortest-path distance in the skeleton graph (Hyperformer's graph, :func:`._graph.hop_distances`),
computed here, not stored in the state dict. The branches are summed, then BN, shortcut, ReLU. (The
official constructor sets that BN's gamma to 1e-6 and then re-initialises every BN of the unit to 1; so
does this one, gamma starts at 1.)

Topology branch (``topo``, ``t0``..``t9``), from the un-centred joints ``joint`` (``forward(x, joint=...)``):

1. mean over persons, then the distance between the time-averaged positions of every two joints: ``(N, V, V)``;
2. min-max normalisation of these matrices;
3. each joint is taken as the point of ``R^V`` given by its row of the normalised matrix (the official
   call hands the matrix to torch-topological's ``VietorisRipsComplex`` as a point cloud), and the finite
   0-dimensional persistence diagram of the Rips filtration of these ``V`` points is computed
   (:mod:`._topology`: the edge lengths of a minimum spanning tree; no gradient flows into the joints);
4. 64 learnt structure elements summarise the diagram: a ``(N, 64)`` embedding per sample;
5. ``t{i}`` = ReLU(BN(Linear(64 -> width))) of the embedding row of each person, added as a channel bias.

Official behaviours that couple the samples of a batch, reproduced with ``faithful=True`` (the default, so
that official weights give the official logits), corrected with ``faithful=False``:

- step 2 uses the minimum and maximum of the *whole batch*; corrected: of each sample;
- step 4: giotto-ph leaves out pairs of zero persistence (joints with equal rows, e.g. coincident joints)
  and torch-topological pads each diagram at the front with NaN points up to the longest diagram of the
  batch; its structure-element layer sums with ``nansum``, so every padding point adds exactly 1 to
  every element. Corrected: a sample's zero-persistence pairs and padding add nothing;
- step 5: ``TopoTrans`` does ``x.repeat(2, 1)`` while features are ordered sample-major ``(n m)``, so row
  ``n * M + m`` (person ``m`` of sample ``n``) gets the embedding of sample ``(n * M + m) mod N`` (for
  M = 2: ``(2n + m) mod N``), not of sample ``n``; corrected: every person gets its own sample's embedding.

With ``faithful=False`` a sample's eval-mode logits do not depend on the rest of the batch.

NW-UCLA (one person): the official ``TopoTrans`` hard-codes ``repeat(2, 1)``, i.e. two persons. With one
person the topology bias has ``2N`` rows against ``N`` feature rows: a shape error for ``N > 1``, and for
``N = 1`` a silent broadcast to a doubled batch. The repository's comment says to edit the line into
``x = x`` for NW-UCLA; that version computes the same as this one for batches of two or more (a batch of
one then fails: the structure-element layer squeezes its ``(1, 64)`` output to ``(64,)``). Here the
faithful mapping uses ``M`` instead of 2, which is the official mapping for ``M = 2`` and the edited line
for ``M = 1``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import (TEN_BLOCK_STRIDES, GraphEncoder, MultiScaleTemporalConv, bn_init, channel_shortcut,
                      conv_init, graph_temporal_blocks)
from ._graph import HOP_GRAPH_VARIANTS, hop_distances, spatial_adjacency
from ._topology import StructureElements, rips_zero_dim_deaths
from ._registry import register_encoder

#: Width of the joint embedding (the input of ``l1``).
EMBED_CHANNELS = 128
#: Output widths of the ten blocks.
BLOCKGCN_WIDTHS: Tuple[int, ...] = (128,) * 4 + (256,) * 6
#: Channel groups of BlockGC, each with its own topology.
NUM_HEADS = 8
#: Parallel branches of BlockGC (a fixed number, not tied to the adjacency subsets).
NUM_BRANCHES = 3
#: Structure elements summarising the persistence diagram (the topology embedding's width).
TOPOLOGY_ELEMENTS = 64
#: Added to column norms before dividing by them.
NORM_EPS = 1e-4


def column_normalise(weights: torch.Tensor) -> torch.Tensor:
    """Divide every column (the second-to-last axis is summed over) by its L2 norm plus :data:`NORM_EPS`."""
    return weights / (weights.norm(dim=-2, keepdim=True) + NORM_EPS)


class BlockGraphConv(nn.Module):
    """BlockGC: a graph convolution with a separate ``V x V`` topology per channel group; see the module
    docstring.

    Args:
        in_channels: channels of the input (a multiple of ``num_heads``).
        out_channels: channels of the output.
        hops: ``(V, V)`` long hop distances between joints.
        num_heads: channel groups.
        num_branches: parallel branches, summed.
    """

    def __init__(self, in_channels: int, out_channels: int, hops: torch.Tensor, num_heads: int = NUM_HEADS,
                 num_branches: int = NUM_BRANCHES):
        super().__init__()
        if in_channels % num_heads:
            raise ValueError(f"in_channels={in_channels} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        num_joints = hops.shape[0]
        self.fc1 = nn.Parameter(torch.eye(num_joints).repeat(num_branches, num_heads, 1, 1))
        self.fc2 = nn.ModuleList(nn.Conv2d(in_channels, out_channels, kernel_size=1, groups=num_heads)
                                 for _ in range(num_branches))
        self.down = channel_shortcut(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.rpe = nn.Parameter(torch.zeros(num_branches, num_heads, int(hops.max()) + 1))
        self.register_buffer("hops", hops, persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                conv_init(module)
            elif isinstance(module, nn.BatchNorm2d):
                bn_init(module, 1)

    def topologies(self) -> torch.Tensor:
        """``(branches, heads, V, V)``: learnt topology plus hop encoding, both column-normalised."""
        return column_normalise(self.fc1) + column_normalise(self.rpe[:, :, self.hops])

    def summed_branch_convs(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of one grouped 1x1 convolution equal to the sum of the branches' ``fc2``, for an
        input whose channels are ordered (group, branch, channel)."""
        weight = torch.stack([conv.weight for conv in self.fc2], dim=1).flatten(1, 2)
        bias = torch.stack([conv.bias for conv in self.fc2]).sum(dim=0)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, frames, joints = x.shape
        groups = x.view(n, self.num_heads, channels // self.num_heads, frames, joints)
        mixed = torch.einsum("nhctv,bhvw->nhbctw", groups, self.topologies()).reshape(n, -1, frames, joints)
        y = F.conv2d(mixed, *self.summed_branch_convs(), groups=self.num_heads)
        return self.relu(self.bn(y) + self.down(x))


class TopologyBias(nn.Module):
    """``relu(bn(mlp(e)))`` of topology embeddings ``e`` ``(R, 64)``, as a channel bias ``(R, width, 1, 1)``."""

    def __init__(self, width: int, embedding: int = TOPOLOGY_ELEMENTS):
        super().__init__()
        self.mlp = nn.Linear(embedding, width)
        self.bn = nn.BatchNorm1d(width)
        self.relu = nn.ReLU()

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.mlp(embedding)))[:, :, None, None]


def joint_distances(joint: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V, M)`` -> ``(N, V, V)``: distances between the person- and time-averaged joint positions."""
    mean_positions = joint.mean(dim=(2, 4))  # (N, C, V)
    return (mean_positions[..., :, None] - mean_positions[..., None, :]).norm(dim=1)


def min_max_normalise(distances: torch.Tensor, per_sample: bool) -> torch.Tensor:
    """Scale ``(N, V, V)`` matrices to ``[0, 1]`` by the extremes of each sample or of the whole batch.

    A constant input (where the official code divides by zero) gives zeros.
    """
    dims = (1, 2) if per_sample else (0, 1, 2)
    low = distances.amin(dim=dims, keepdim=True)
    span = distances.amax(dim=dims, keepdim=True) - low
    return (distances - low) / span.clamp_min(torch.finfo(distances.dtype).tiny)


class SkeletonTopology(nn.Module):
    """The topology embedding ``(N, 64)`` of each sample's skeleton (steps 1-4 of the module docstring).

    Args:
        faithful: reproduce the official batch coupling (batch-wide normalisation, padding points).
        num_elements: width of the embedding.
    """

    def __init__(self, faithful: bool = True, num_elements: int = TOPOLOGY_ELEMENTS):
        super().__init__()
        self.faithful = faithful
        self.pl = StructureElements(num_elements)  # the official name: state-dict keys topo.pl.*

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            distances = min_max_normalise(joint_distances(joint), per_sample=not self.faithful)
            deaths = rips_zero_dim_deaths(distances)
        diagram = torch.stack((torch.zeros_like(deaths), deaths), dim=-1)
        kept = deaths > 0
        embedding = self.pl(diagram, kept)
        if self.faithful:
            kept_per_sample = kept.sum(dim=1, keepdim=True)
            embedding = embedding + (kept_per_sample.max() - kept_per_sample)
        return embedding


def person_rows(embedding: torch.Tensor, num_person: int, faithful: bool) -> torch.Tensor:
    """The embedding row of each feature row ``n * M + m``: sample ``(n * M + m) mod N`` as the official
    code does (``faithful``), else sample ``n``."""
    if faithful:
        return embedding.repeat(num_person, 1)
    return embedding.repeat_interleave(num_person, dim=0)


class BlockGCN(GraphEncoder):
    """BlockGCN on a joint layout; see the module docstring.

    Args:
        num_class, layout, num_person, window, in_channels: as :class:`SkeletonEncoder`.
        drop_out: dropout before the classifier (the official configs use 0).
        faithful: reproduce the official model's batch coupling in the topology branch (default, needed
            for equal logits with official weights); ``False`` makes every sample independent of its batch.
    """

    def __init__(self, num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64,
                 in_channels: int = 3, drop_out: float = 0.0, faithful: bool = True):
        hops = torch.from_numpy(hop_distances(spatial_adjacency(layout, HOP_GRAPH_VARIANTS[layout])))
        blocks = graph_temporal_blocks(
            EMBED_CHANNELS,
            make_gcn=lambda cin, cout: BlockGraphConv(cin, cout, hops),
            make_tcn=lambda width, stride: MultiScaleTemporalConv(width, width, kernel_size=5, stride=stride,
                                                                  dilations=(1, 2)),
            widths=BLOCKGCN_WIDTHS, strides=TEN_BLOCK_STRIDES, first_residual=True)
        super().__init__(blocks, num_class, layout, num_person, window, in_channels, drop_out)
        self.faithful = faithful
        # The input BatchNorm normalises the joint embedding, not the coordinates.
        self.data_bn = nn.BatchNorm1d(num_person * EMBED_CHANNELS * self.num_joints)
        bn_init(self.data_bn, 1)
        self.to_joint_embedding = nn.Linear(in_channels, EMBED_CHANNELS)
        self.pos_embedding = nn.Parameter(torch.randn(1, self.num_joints, EMBED_CHANNELS))
        block_inputs = (EMBED_CHANNELS, *BLOCKGCN_WIDTHS[:-1])
        self.bias_names = [f"t{i}" for i in range(len(blocks))]
        for name, width in zip(self.bias_names, block_inputs):
            self.add_module(name, TopologyBias(width))
        self.topo = SkeletonTopology(faithful)

    def topology_biases(self) -> Sequence[TopologyBias]:
        """The topology biases ``t0``..``t9``, one before each block."""
        return [getattr(self, name) for name in self.bias_names]

    def normalise_input(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> joint embedding -> BatchNorm per (person, joint, channel) -> ``(N*M, 128, T, V)``."""
        self.check_input(x)
        n, _, frames, joints, persons = x.shape
        embedded = self.to_joint_embedding(x.permute(0, 4, 2, 3, 1)) + self.pos_embedding  # (N, M, T, V, E)
        normed = self.data_bn(embedded.permute(0, 1, 3, 4, 2).reshape(n, -1, frames))
        return (normed.view(n, persons, joints, EMBED_CHANNELS, frames).permute(0, 1, 3, 4, 2)
                .reshape(n * persons, EMBED_CHANNELS, frames, joints))

    def forward(self, x: torch.Tensor, joint: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits ``(N, num_class)``; ``joint`` is the un-centred joint tensor for the topology branch
        (shape of ``x``; default ``x``)."""
        return self.forward_head(self.forward_features(x, joint=joint), x.shape[-1])

    def forward_features(self, x: torch.Tensor, joint: Optional[torch.Tensor] = None) -> torch.Tensor:
        if joint is None:
            joint = x
        elif joint.shape != x.shape:
            raise ValueError(f"joint has shape {tuple(joint.shape)}, x has {tuple(x.shape)}; they must agree")
        features = self.normalise_input(x)
        rows = person_rows(self.topo(joint), x.shape[-1], self.faithful)
        for block, bias in zip(self.blocks(), self.topology_biases()):
            features = block(features + bias(rows))
        return features


@register_encoder("blockgcn", published=2024, feeders={"ntu25": "spine-relative", "ucla20": "centred"},
                  extra_inputs=("joint",), recipe_options=lambda layout, stream: {"faithful": True})
def blockgcn(num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64,
             **kwargs) -> BlockGCN:
    """BlockGCN (window 64 on NTU; 52 assumed on NW-UCLA, for which the repository has no config)."""
    return BlockGCN(num_class, layout, num_person, window, **kwargs)
