"""Joint layouts: joint names, bone pairs and skeleton graphs shared by ``skeldata`` and ``csre_models``.

Every index list here is **1-based**, as the published code writes them, so that a reader can check
them line by line against the Kinect documentation and the reference repositories. Use the
``*_index`` helpers to get 0-based numpy arrays.

Two layouts exist:

``ntu25``
    Kinect v2 (NTU RGB+D 60/120), 25 joints, up to 2 bodies.
``ucla20``
    Kinect v1 (Northwestern-UCLA Multiview Action3D), 20 joints, 1 body.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

#: The largest joint coordinate (metres, either sign) a file or a store may hold. Kinect v1 and v2 see
#: people about 0.5-4.5 m away, and the stores hold camera coordinates or coordinates centred on the first
#: frame, so real values stay within a few metres; 100 m leaves a wide margin and still catches misread or
#: corrupted numbers (1e29, a flipped exponent bit). The readers refuse files beyond it, ``verify`` checks
#: every stored frame against it and ``Store.sequence`` every read.
PLAUSIBLE_COORDINATE = 100.0

Pair = Tuple[int, int]


@dataclass(frozen=True)
class Layout:
    """A joint layout.

    Attributes:
        name: registry name (``ntu25`` or ``ucla20``).
        joint_names: names in joint order (index 0 is joint 1).
        bone_pairs: ``(child, parent)`` pairs, 1-based, one per joint: the bone of joint ``child`` is
            ``x[child] - x[parent]``. A self pair gives a zero bone (the root). These are the pairs of
            the CTR-GCN-family feeders (``bone_pairs.py``), which define the bone stream.
        graph_edges: named variants of the inward edge list ``(child, parent)``, 1-based, used to build
            the adjacency matrices of the graph encoders.
        origin_joint: 0-based joint the SGN-family preprocessing centres on (NTU: SpineMid).
        spine_joint: 0-based joint the CSRE/Hyperformer feeders make the joint stream relative to
            (NTU: SpineShoulder, NW-UCLA: ShoulderCenter).
        max_bodies: bodies per sample in a store of this layout.
    """

    name: str
    joint_names: Tuple[str, ...]
    bone_pairs: Tuple[Pair, ...]
    graph_edges: Dict[str, Tuple[Pair, ...]] = field(default_factory=dict)
    origin_joint: int = 0
    spine_joint: int = 0
    max_bodies: int = 1

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def bone_index(self) -> Tuple[np.ndarray, np.ndarray]:
        """0-based ``(child, parent)`` index arrays of the bone pairs."""
        pairs = np.asarray(self.bone_pairs, dtype=np.int64) - 1
        return pairs[:, 0], pairs[:, 1]

    def edges(self, variant: str = "standard") -> List[Pair]:
        """0-based inward edges ``(child, parent)`` of a graph variant."""
        try:
            edges = self.graph_edges[variant]
        except KeyError:
            raise KeyError(f"layout {self.name!r} has no graph variant {variant!r}; "
                           f"known: {sorted(self.graph_edges)}") from None
        return [(i - 1, j - 1) for i, j in edges]


NTU_JOINTS = (
    "SpineBase", "SpineMid", "Neck", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
    "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
)

# Body of the skeleton without the hands' tips and thumbs: the same in every published NTU graph.
_NTU_TRUNK: Tuple[Pair, ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)
# CTR-GCN / 2s-AGCN (and the feeders' bone pairs): tip -> thumb -> hand.
_NTU_HANDS_CHAIN: Tuple[Pair, ...] = ((22, 23), (23, 8), (24, 25), (25, 12))
# Hyperformer / BlockGCN / CSRE: tip and thumb both attached to the hand.
_NTU_HANDS_FORK: Tuple[Pair, ...] = ((22, 8), (23, 8), (24, 12), (25, 12))

NTU25 = Layout(
    name="ntu25",
    joint_names=NTU_JOINTS,
    bone_pairs=_NTU_TRUNK[:20] + ((21, 21),) + _NTU_HANDS_CHAIN,
    graph_edges={"standard": _NTU_TRUNK + _NTU_HANDS_CHAIN,
                 "hands_fork": _NTU_TRUNK + _NTU_HANDS_FORK},
    origin_joint=1,
    spine_joint=20,
    max_bodies=2,
)

UCLA_JOINTS = (
    "HipCenter", "Spine", "ShoulderCenter", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
)
_UCLA_EDGES: Tuple[Pair, ...] = (
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
    (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)

UCLA20 = Layout(
    name="ucla20",
    joint_names=UCLA_JOINTS,
    bone_pairs=_UCLA_EDGES[:2] + ((3, 3),) + _UCLA_EDGES[2:],
    graph_edges={"standard": _UCLA_EDGES},
    origin_joint=1,
    spine_joint=2,
    max_bodies=1,
)

LAYOUTS: Dict[str, Layout] = {layout.name: layout for layout in (NTU25, UCLA20)}


def get_layout(name: str) -> Layout:
    """Return the layout called ``name`` (``ntu25`` or ``ucla20``)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown joint layout {name!r}; known: {sorted(LAYOUTS)}") from None
