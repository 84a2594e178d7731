"""Adjacency matrices of the skeleton graphs, built from the edge lists in :mod:`skeldata.layouts`.

The GCN encoders use the *spatial* labelling of ST-GCN: three ``V x V`` matrices, one per neighbour
subset of a joint,

- ``I``: the joint itself;
- ``inward``: neighbours one step closer to the skeleton's centre;
- ``outward``: neighbours one step farther from it.

Conventions (those of the graph tools that CTR-GCN, 2s-AGCN, Hyperformer and BlockGCN share): an edge
``(child, parent)`` sets ``A[parent, child] = 1``, so ``A[:, j]`` lists where joint ``j`` sends its
features; each column is then divided by its sum (columns that sum to zero stay zero). A graph
convolution ``x @ A`` over the joint axis therefore gives every joint the mean of its neighbours in
the subset.

NW-UCLA needs nothing special: ``spatial_adjacency("ucla20")`` builds the 20-joint graph that
CTR-GCN's ``graph/ucla.py`` defines (the same edges as the layout's ``standard`` variant).
"""
from __future__ import annotations

from typing import Iterable, Tuple, Union

import numpy as np

from skeldata.layouts import Layout, get_layout

Edge = Tuple[int, int]


def edge_matrix(edges: Iterable[Edge], num_joints: int) -> np.ndarray:
    """Binary ``(V, V)`` matrix with ``A[target, source] = 1`` for every 0-based edge ``(source, target)``."""
    matrix = np.zeros((num_joints, num_joints))
    for source, target in edges:
        matrix[target, source] = 1.0
    return matrix


def normalise_columns(matrix: np.ndarray) -> np.ndarray:
    """Divide each column by its sum; all-zero columns stay zero."""
    column_sums = matrix.sum(axis=0)
    scale = np.divide(1.0, column_sums, out=np.zeros_like(column_sums), where=column_sums > 0)
    return matrix * scale


def spatial_adjacency(layout: Union[str, Layout], variant: str = "standard") -> np.ndarray:
    """The spatial-labelling adjacency ``stack(I, norm(inward), norm(outward))`` of a layout.

    Args:
        layout: a :class:`skeldata.layouts.Layout` or its name (``ntu25``, ``ucla20``).
        variant: which edge list of the layout to use: ``standard`` (CTR-GCN, 2s-AGCN) or
            ``hands_fork`` (Hyperformer, BlockGCN; NTU only).

    Returns:
        float32 array ``(3, V, V)``.
    """
    if isinstance(layout, str):
        layout = get_layout(layout)
    inward = layout.edges(variant)
    outward = [(parent, child) for child, parent in inward]
    num_joints = layout.num_joints
    subsets = (
        np.eye(num_joints),
        normalise_columns(edge_matrix(inward, num_joints)),
        normalise_columns(edge_matrix(outward, num_joints)),
    )
    return np.stack(subsets).astype(np.float32)


#: Skeleton graph of each layout that Hyperformer and BlockGCN build their hop distances from (their
#: NTU graph attaches the hand tip and thumb both to the hand; see ``skeldata.layouts``).
HOP_GRAPH_VARIANTS = {"ntu25": "hands_fork", "ucla20": "standard"}


def hop_distances(adjacency: np.ndarray) -> np.ndarray:
    """Shortest-path distances (in edges) between all joints of a connected skeleton graph.

    Args:
        adjacency: ``(K, V, V)`` adjacency subsets (as :func:`spatial_adjacency`); two joints are
            neighbours when any subset links them.

    Returns:
        int64 ``(V, V)`` array, 0 on the diagonal.
    """
    linked = (adjacency.sum(axis=0) != 0).astype(np.int64)
    distances = np.full(linked.shape, -1, dtype=np.int64)
    within = np.eye(len(linked), dtype=bool)  # pairs joined by a path of at most `hops` edges
    hops = 0
    while (within & (distances < 0)).any():
        distances[within & (distances < 0)] = hops
        within |= (within.astype(np.int64) @ linked) > 0
        hops += 1
    if (distances < 0).any():
        raise ValueError("the skeleton graph is not connected")
    return distances
