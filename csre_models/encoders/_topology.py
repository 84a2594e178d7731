"""0-dimensional persistent homology of Vietoris-Rips filtrations, and a learnable summary of its diagrams.

In the Vietoris-Rips filtration of a finite point set every point is born at 0, and two connected
components merge when the shortest edge between them enters the filtration. The finite 0-dimensional
persistence pairs are therefore ``(0, w)`` for the edge lengths ``w`` of a minimum spanning tree of the
complete graph on the points (Kruskal's algorithm *is* the 0-dimensional persistence algorithm). All
minimum spanning trees of a graph have the same multiset of edge lengths, so the diagram does not depend
on how ties are broken; it is returned sorted, the order in which Kruskal's algorithm (and giotto-ph's
``ripser_parallel``) reports the pairs.

:class:`StructureElements` turns diagrams into fixed-size vectors with learnable Gaussian "structure
elements" (Hofer et al., 2017): ``out[e] = sum over points p of exp(-|s_e * (c_e - p)|^2)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def minimum_spanning_tree_lengths(distances: torch.Tensor) -> torch.Tensor:
    """Edge lengths of a minimum spanning tree of each complete graph in a batch (Prim's algorithm).

    Args:
        distances: ``(B, P, P)`` symmetric distance matrices, ``P >= 1``.

    Returns:
        ``(B, P - 1)`` edge lengths, ascending. Every length is an entry of ``distances``, so gradients
        reach the distances of the chosen edges.
    """
    batch, num_points, _ = distances.shape
    rows = torch.arange(batch, device=distances.device)
    in_tree = torch.zeros(batch, num_points, dtype=torch.bool, device=distances.device)
    in_tree[:, 0] = True
    distance_to_tree = distances[:, 0]
    lengths = []
    for _ in range(num_points - 1):
        length, nearest = distance_to_tree.masked_fill(in_tree, float("inf")).min(dim=1)
        lengths.append(length)
        in_tree[rows, nearest] = True
        distance_to_tree = torch.minimum(distance_to_tree, distances[rows, nearest])
    if not lengths:
        return distances.new_zeros(batch, 0)
    return torch.stack(lengths, dim=1).sort(dim=1).values


def rips_zero_dim_deaths(points: torch.Tensor) -> torch.Tensor:
    """Death times of the finite 0-dimensional persistence pairs of the Rips filtration of point clouds.

    Args:
        points: ``(B, P, D)``, ``B`` clouds of ``P`` points in ``R^D`` (Euclidean distance).

    Returns:
        ``(B, P - 1)`` death times, ascending (every birth is 0). Pairs of zero persistence (coincident
        points) are included as zeros; persistence software usually leaves them out.
    """
    distances = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    return minimum_spanning_tree_lengths(distances)


class StructureElements(nn.Module):
    """Learnable summary of persistence diagrams: one Gaussian bump ("structure element") per output.

    ``out[b, e] = sum_p valid[b, p] * exp(-sum_k sharpness[e, k]^2 * (centres[e, k] - diagram[b, p, k])^2)``
    with ``k`` over (birth, death). Initialisation as torch-topological's ``StructureElementLayer``:
    centres uniform in ``[0, 1)^2``, sharpness 3.

    Args:
        num_elements: number of structure elements (outputs).
    """

    def __init__(self, num_elements: int):
        super().__init__()
        self.centres = nn.Parameter(torch.rand(num_elements, 2))
        self.sharpness = nn.Parameter(torch.full((num_elements, 2), 3.0))

    def forward(self, diagram: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``diagram`` ``(B, P, 2)`` (birth, death) points, ``valid`` ``(B, P)`` bool -> ``(B, num_elements)``."""
        offsets = self.centres[:, None] - diagram[:, None]  # (B, E, P, 2)
        bumps = torch.exp(-(offsets.square() * self.sharpness[:, None].square()).sum(dim=-1))
        return (bumps * valid[:, None]).sum(dim=-1)
