"""What happens to one raw file, in a worker process: parse, extract, denoise, centre.

Kept free of HDF5, pandas and joblib so that worker processes start quickly. Every function here
turns bad input into a :class:`FileOutcome` with a reason instead of raising.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .datasets import DatasetSpec, get_dataset
from .errors import MalformedFileError, SampleDropped
from .formats._files import RawSource
from .formats.ntu import SampleName, parse_name, read_skeleton
from .formats.ucla import parse_ucla_name, read_ucla
from .pipeline.denoise import DenoiseReport, denoise
from .pipeline.extract import RawSample, group_bodies
from .pipeline.stgcn import stgcn_sample
from .pipeline.transform import centre, to_bodies

#: What a worker is given: the sample name and where the file is (a path, or a zip member: two strings),
#: small enough to pickle cheaply.
Item = Tuple[str, RawSource]


@dataclass
class FileOutcome:
    """What happened to one raw file: a sample (``row`` and ``joints`` or ``raw``) or a drop and why."""

    name: str
    row: Optional[dict] = None
    joints: Optional[np.ndarray] = None
    raw: Optional[RawSample] = None
    reason: Optional[str] = None
    detail: str = ""


def _outcome_of_failure(name: str, exc: Exception) -> FileOutcome:
    if isinstance(exc, SampleDropped):
        return FileOutcome(name, reason=exc.code, detail=exc.detail)
    return FileOutcome(name, reason="malformed", detail=str(exc))


# ------------------------------------------------------------------------------------------------- NTU

def check_ntu_name(name: str, path: RawSource, spec: DatasetSpec) -> SampleName:
    try:
        fields = parse_name(name)
    except ValueError as exc:
        raise MalformedFileError(str(path), str(exc)) from None
    if fields.setup > spec.max_setup or fields.action > spec.num_classes:
        raise SampleDropped("not_in_dataset",
                            f"setup S{fields.setup:03d} / action A{fields.action:03d} is outside {spec.name} "
                            f"(S001-S{spec.max_setup:03d}, A001-A{spec.num_classes:03d})")
    return fields


def ntu_name_columns(fields: SampleName) -> dict:
    return {"name": fields.name, "label": fields.label, "setup": fields.setup, "camera": fields.camera,
            "performer": fields.performer, "replication": fields.replication}


def report_columns(raw_frames: int, frames_dropped: int, report: DenoiseReport) -> dict:
    return {"raw_frames": raw_frames, "frames_dropped": frames_dropped, "bodies": report.bodies,
            "removed_by_length": report.removed_by_length, "removed_by_spread": report.removed_by_spread,
            "unassigned": report.unassigned, "rows_removed": report.rows_removed}


def _extract_ntu(name: str, path: RawSource, spec: DatasetSpec) -> Tuple[SampleName, RawSample]:
    fields = check_ntu_name(name, path, spec)
    raw = group_bodies(name, read_skeleton(path))
    if not raw.bodies:
        raise SampleDropped("no_body", f"all {raw.raw_frames} frames have 0 bodies")
    return fields, raw


def process_ntu_file(item: Item, dataset: str) -> FileOutcome:
    """The whole pipeline on one ``.skeleton`` file."""
    name, path = item
    spec = get_dataset(dataset)
    try:
        fields, raw = _extract_ntu(name, path, spec)
        denoised = denoise(raw)
        joints = to_bodies(centre(denoised.joints), spec.max_bodies)
    except (MalformedFileError, SampleDropped) as exc:
        return _outcome_of_failure(name, exc)
    row = ntu_name_columns(fields)
    row.update(n_frames=len(joints), n_bodies=denoised.actors)
    row.update(report_columns(raw.raw_frames, len(raw.dropped_frames), denoised.report))
    return FileOutcome(name, row=row, joints=joints)


def process_ntu_file_stgcn(item: Item, dataset: str) -> FileOutcome:
    """The ST-GCN-lineage pipeline (2s-AGCN / MS-G3D) on one ``.skeleton`` file: 300 frames, 2 slots.

    A file without any body is left out (``no_body``), as the official missing-skeleton lists leave it out.
    """
    name, path = item
    spec = get_dataset(dataset)
    try:
        fields = check_ntu_name(name, path, spec)
        records = read_skeleton(path)
        if not len(records.body_ids):
            raise SampleDropped("no_body", f"all {records.raw_frames} frames have 0 bodies")
        joints, report = stgcn_sample(records)
    except (MalformedFileError, SampleDropped) as exc:
        return _outcome_of_failure(name, exc)
    row = ntu_name_columns(fields)
    row.update(n_frames=len(joints), n_bodies=report.n_bodies, raw_frames=records.raw_frames,
               frames_dropped=len(records.dropped_frames), bodies=report.slots_used)
    return FileOutcome(name, row=row, joints=joints)


def extract_ntu_file(item: Item, dataset: str) -> FileOutcome:
    """Stage 1 only: parse one ``.skeleton`` file and group its bodies."""
    name, path = item
    try:
        fields, raw = _extract_ntu(name, path, get_dataset(dataset))
    except (MalformedFileError, SampleDropped) as exc:
        return _outcome_of_failure(name, exc)
    return FileOutcome(name, row=ntu_name_columns(fields), raw=raw)


# --------------------------------------------------------------------------------------------- NW-UCLA

def process_ucla_file(item: Item, dataset: str = "ucla") -> FileOutcome:
    """One NW-UCLA ``all_sqe`` file: its joints as they are, one body."""
    name, path = item
    try:
        try:
            fields = parse_ucla_name(name)
        except ValueError as exc:
            raise MalformedFileError(str(path), str(exc)) from None
        joints = read_ucla(path)[:, None]
    except MalformedFileError as exc:
        return _outcome_of_failure(name, exc)
    row = {"name": fields.name, "label": fields.label, "action": fields.action, "subject": fields.subject,
           "take": fields.take, "view": fields.view, "n_frames": len(joints), "n_bodies": 1}
    return FileOutcome(name, row=row, joints=joints)


#: dataset family -> (file suffix, the one-pass worker)
PROCESSORS: Dict[str, Tuple[str, Callable[[Item, str], FileOutcome]]] = {
    "ntu": (".skeleton", process_ntu_file),
    "ucla": (".json", process_ucla_file),
}

#: ``skeldata build --pipeline`` -> the NTU one-pass worker.
NTU_PIPELINES: Dict[str, Callable[[Item, str], FileOutcome]] = {
    "sgn": process_ntu_file,
    "stgcn": process_ntu_file_stgcn,
}
