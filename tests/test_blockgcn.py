"""BlockGCN's topology branch: 0-dimensional Rips persistence, structure elements, and the batch coupling
of the official model (``faithful=True``) against the corrected mode (``faithful=False``).

Equality with the official logits and the parameter counts are tested in ``test_encoders.py``.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from csre_models import create_encoder
from csre_models.encoders._topology import (StructureElements, minimum_spanning_tree_lengths,
                                               rips_zero_dim_deaths)
from csre_models.encoders.blockgcn import SkeletonTopology, person_rows
from test_encoders import one_thread  # noqa: F401  autouse fixture: every test on one thread

WINDOW = 16


def kruskal_lengths(distances: torch.Tensor) -> list:
    """Minimum-spanning-tree edge lengths of one distance matrix, by Kruskal's algorithm with union-find."""
    num_points = distances.shape[0]
    parent = list(range(num_points))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    lengths = []
    for i, j in sorted(itertools.combinations(range(num_points), 2), key=lambda edge: float(distances[edge])):
        if root(i) != root(j):
            parent[root(i)] = root(j)
            lengths.append(float(distances[i, j]))
    return lengths


def symmetric(matrices: torch.Tensor) -> torch.Tensor:
    """``(B, P, P)`` -> symmetric matrices with a zero diagonal."""
    zero_diagonal = 1 - torch.eye(matrices.shape[-1])
    return (matrices + matrices.transpose(-1, -2)) * zero_diagonal


def test_spanning_tree_lengths_equal_kruskal_also_with_ties():
    torch.manual_seed(0)
    random = symmetric(torch.rand(4, 9, 9))
    tied = symmetric(torch.randint(1, 4, (4, 9, 9)).float())  # few distinct lengths: many ties
    for distances in (random, tied):
        lengths = minimum_spanning_tree_lengths(distances)
        assert lengths.shape == (4, 8)
        for matrix, row in zip(distances, lengths):
            assert row.tolist() == kruskal_lengths(matrix)


def test_rips_deaths_of_points_on_a_line():
    points = torch.tensor([[[0.0], [1.0], [3.0], [3.0], [7.0]]])
    assert rips_zero_dim_deaths(points).tolist() == [[0.0, 1.0, 2.0, 4.0]]


def test_structure_elements_sum_gaussian_bumps_over_the_kept_points():
    torch.manual_seed(0)
    layer = StructureElements(5)
    diagram = torch.rand(2, 4, 2)
    kept = torch.tensor([[True, True, False, True], [False, True, True, True]])
    expected = torch.zeros(2, 5)
    for b, e, p in itertools.product(range(2), range(5), range(4)):
        if kept[b, p]:
            squared = (layer.sharpness[e] ** 2 * (layer.centres[e] - diagram[b, p]) ** 2).sum()
            expected[b, e] += torch.exp(-squared)
    assert torch.allclose(layer(diagram, kept), expected)


def skeleton_batch(num_samples: int, num_person: int = 2, joints: int = 25) -> torch.Tensor:
    return torch.randn(num_samples, 3, WINDOW, joints, num_person)


def test_faithful_topology_pads_short_diagrams_with_ones():
    """Coincident joints drop a zero-persistence pair; officially the NaN padding of that diagram to the
    batch's longest adds 1 to every element, and only when another sample has a longer diagram."""
    torch.manual_seed(0)
    joints = skeleton_batch(2)
    joints[0, :, :, 3] = joints[0, :, :, 4]
    faithful, corrected = SkeletonTopology(faithful=True), SkeletonTopology(faithful=False)
    corrected.load_state_dict(faithful.state_dict())
    with torch.no_grad():
        alone = faithful(joints[:1])
        assert torch.allclose(alone, corrected(joints[:1]))
        assert torch.allclose(faithful(joints)[0], corrected(joints)[0] + 1)


def test_person_rows_reproduce_the_official_mix_up_or_give_each_person_its_sample():
    embedding = torch.arange(3.0)[:, None]  # sample n has embedding n
    faithful = person_rows(embedding, num_person=2, faithful=True).flatten().tolist()
    corrected = person_rows(embedding, num_person=2, faithful=False).flatten().tolist()
    rows = [(n, m) for n in range(3) for m in range(2)]
    assert faithful == [(2 * n + m) % 3 for n, m in rows]
    assert corrected == [n for n, _ in rows]


def paired_models(**kwargs):
    """A faithful and a corrected BlockGCN with the same random weights (BN statistics moved off (0, 1))."""
    torch.manual_seed(0)
    faithful = create_encoder("blockgcn", num_class=6, window=WINDOW, faithful=True, **kwargs)
    state = {k: v + 0.1 * torch.rand_like(v) if v.is_floating_point() else v
             for k, v in faithful.state_dict().items()}
    faithful.load_reference_state_dict(state)
    corrected = create_encoder("blockgcn", num_class=6, window=WINDOW, faithful=False, **kwargs)
    corrected.load_reference_state_dict(state)
    return faithful.eval(), corrected.eval()


@pytest.mark.parametrize("layout, num_person", [("ntu25", 2), ("ucla20", 1)])
def test_corrected_mode_is_batch_independent(layout: str, num_person: int):
    faithful, corrected = paired_models(layout=layout, num_person=num_person)
    torch.manual_seed(1)
    batch = skeleton_batch(4, num_person, faithful.num_joints)
    batch[2] *= 5  # a larger skeleton moves the batch-wide normalisation
    with torch.no_grad():
        together = corrected(batch)
        for i in range(4):
            alone = corrected(batch[i:i + 1])
            assert torch.allclose(alone, together[i:i + 1], rtol=1e-4, atol=1e-4 * alone.abs().max())
        official_together = faithful(batch)
        official_alone = torch.cat([faithful(batch[i:i + 1]) for i in range(4)])
        corrected_alone = torch.cat([corrected(batch[i:i + 1]) for i in range(4)])
    assert not torch.allclose(official_together, official_alone, rtol=1e-3, atol=1e-3 * official_alone.abs().max())
    assert torch.allclose(official_alone, corrected_alone), "on a batch of one the two modes agree"


def test_joint_tensor_feeds_the_topology_branch():
    faithful, _ = paired_models()
    torch.manual_seed(1)
    x, other = skeleton_batch(2), skeleton_batch(2)
    with torch.no_grad():
        assert torch.equal(faithful(x), faithful(x, joint=x))
        assert not torch.allclose(faithful(x), faithful(x, joint=other))
    with pytest.raises(ValueError, match="joint"):
        faithful(x, joint=x[..., :1])
