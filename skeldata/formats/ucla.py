"""Northwestern-UCLA Multiview Action3D in the ``all_sqe`` JSON form that CTR-GCN distributes.

One file per sequence, ``aAA_sSS_eEE_vVV.json`` (action, subject, take, view)::

    {"file_name": "a01_s01_e00_v01", "skeletons": [[[x, y, z] * 20] * T], "label": 1}

``skeletons`` holds T frames of the 20 Kinect v1 joints in metres; ``label`` is 1..10 for the actions
a01..a06, a08, a09, a11, a12 in that order. The reader keeps the values as they are (float32) and
checks that the file agrees with its name.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import MalformedFileError
from ._archives import ArchiveMember
from ._files import check_coordinates, check_text_encoding, raw_source, read_raw_bytes

NUM_JOINTS = 20
ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
NAME_PATTERN = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")


@dataclass(frozen=True)
class UclaName:
    """The fields of an NW-UCLA sequence name ``aAA_sSS_eEE_vVV``."""

    name: str
    action: int
    subject: int
    take: int
    view: int

    @property
    def label(self) -> int:
        """0-based class label: the position of the action among ``ACTIONS``."""
        return ACTIONS.index(self.action)


def parse_ucla_name(name: str) -> UclaName:
    """Parse ``a01_s02_e03_v01`` (with or without ``.json``).

    Raises:
        ValueError: not of the form ``aAA_sSS_eEE_vVV`` or an action outside the ten of the data set.
    """
    stem = name[:-len(".json")] if name.endswith(".json") else name
    match = NAME_PATTERN.match(stem)
    if match is None:
        raise ValueError(f"name {stem!r} does not match aAA_sSS_eEE_vVV (for example a01_s02_e03_v01)")
    action, subject, take, view = (int(g) for g in match.groups())
    if action not in ACTIONS:
        raise ValueError(f"name {stem!r}: action a{action:02d} is not one of the ten NW-UCLA actions "
                         f"({', '.join(f'a{a:02d}' for a in ACTIONS)})")
    return UclaName(stem, action, subject, take, view)


def read_ucla(path: Union[str, Path, ArchiveMember]) -> np.ndarray:
    """The joints of one ``all_sqe`` file (or zip member), float32 ``(T, 20, 3)``; errors name the file and
    the problem."""
    source = raw_source(path)
    fields = parse_ucla_name(source.name)
    data = read_raw_bytes(source)
    where = str(source)
    check_text_encoding(data, where, "NW-UCLA JSON")
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFileError(where, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict) or "skeletons" not in record:
        raise MalformedFileError(where, "expected a JSON object with a 'skeletons' key")
    if record.get("file_name", fields.name) != fields.name:
        raise MalformedFileError(where, f"file_name {record['file_name']!r} does not match the file's name")
    if "label" in record and record["label"] != fields.label + 1:
        raise MalformedFileError(where, f"label {record['label']!r} does not match action "
                                        f"a{fields.action:02d} (expected {fields.label + 1})")
    try:
        joints = np.asarray(record["skeletons"], dtype=np.float64)
    except (TypeError, ValueError):
        raise MalformedFileError(where, "'skeletons' is not a T x 20 x 3 array of numbers") from None
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise MalformedFileError(where, f"'skeletons' has shape {joints.shape}, expected (T >= 1, 20, 3)")
    if not np.isfinite(joints).all():
        raise MalformedFileError(where, "'skeletons' holds a value that is not finite")
    check_coordinates(joints, where, lambda flat: "frame {}, joint {}, {}".format(
        flat // 60 + 1, flat % 60 // 3 + 1, "xyz"[flat % 3]))
    return joints.astype(np.float32)
