"""The file ``skeldata extract`` writes (kind ``raw``): every body of every file, before denoising.

Layout::

    /samples/<column>          name, setup, camera, performer, replication, label, raw_frames,
                               frames_dropped, body_offset (N + 1), dropped_offset (N + 1)
    /samples/dropped_frames    0-based indices of the frames without a body, all samples concatenated
    /bodies/<column>           one row per body: sample, body_id, first_frame, length, motion
                               (NaN in a single-body file), joint_offset (B + 1)
    /bodies/joints             (body-frames, 25, 3) float32, each body's appearances in order
    /dropped/<column>          files without a sample: name, reason, detail

It holds exactly what the denoise stage needs, so ``skeldata denoise`` gives the same result as
``skeldata build``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Mapping, Tuple, Union

import numpy as np

from ._h5 import DEFAULT_COMPRESSION, AtomicH5File, ColumnBuffer, FrameAppender, LazyH5Reader, read_table, write_column, write_strings
from .datasets import DatasetSpec, get_dataset
from .pipeline.extract import Body, RawSample

SAMPLE_COLUMNS = {"name": str, "label": np.int16, "setup": np.int16, "camera": np.int16,
                  "performer": np.int16, "replication": np.int16, "raw_frames": np.int32}
BODY_COLUMNS = {"sample": np.int64, "body_id": str, "first_frame": np.int32, "length": np.int32,
                "motion": np.float32}
NAME_COLUMNS = ("name", "label", "setup", "camera", "performer", "replication")


class RawFileWriter:
    """Writes extracted samples one by one (see the module docstring for the layout)."""

    def __init__(self, path: Union[str, Path], spec: DatasetSpec, attrs: Mapping[str, object],
                 compression: str = DEFAULT_COMPRESSION, chunk_frames: int = 1024):
        self._file = AtomicH5File(path, "raw", dict(dataset=spec.name, layout=spec.layout, **attrs))
        bodies = self._file.file.create_group("bodies")
        self._joints = FrameAppender(bodies, "joints", (25, 3), np.float32, chunk_frames, compression)
        self._samples = ColumnBuffer(SAMPLE_COLUMNS)
        self._bodies = ColumnBuffer(BODY_COLUMNS)
        self._body_offset: List[int] = [0]
        self._joint_offset: List[int] = [0]
        self._dropped_frames: List[np.ndarray] = []
        self._dropped_offset: List[int] = [0]
        self._dropped = ColumnBuffer({"name": str, "reason": str})
        self._dropped_details: List[str] = []

    def add_sample(self, row: Mapping[str, object], raw: RawSample) -> None:
        sample = len(self._samples)
        self._samples.append(dict(row, raw_frames=raw.raw_frames))
        for body in raw.bodies:
            motion = np.float32(np.nan) if body.motion is None else body.motion
            self._bodies.append({"sample": sample, "body_id": body.body_id, "first_frame": body.first_frame,
                                 "length": body.length, "motion": motion})
            self._joints.append(body.joints)
            self._joint_offset.append(self._joint_offset[-1] + body.length)
        self._body_offset.append(self._body_offset[-1] + len(raw.bodies))
        self._dropped_frames.append(raw.dropped_frames.astype(np.int32))
        self._dropped_offset.append(self._dropped_offset[-1] + len(raw.dropped_frames))

    def add_dropped(self, name: str, reason: str, detail: str) -> None:
        self._dropped.append({"name": name, "reason": reason})
        self._dropped_details.append(detail)

    def __len__(self) -> int:
        return len(self._samples)

    def commit(self) -> None:
        h5 = self._file.file
        self._joints.close()
        samples = h5.create_group("samples")
        self._samples.write(samples)
        write_column(samples, "frames_dropped", np.diff(np.asarray(self._dropped_offset, dtype=np.int64)).astype(np.int32))
        write_column(samples, "body_offset", np.asarray(self._body_offset, dtype=np.int64))
        write_column(samples, "dropped_offset", np.asarray(self._dropped_offset, dtype=np.int64))
        frames = np.concatenate(self._dropped_frames) if self._dropped_frames else np.zeros(0, np.int32)
        write_column(samples, "dropped_frames", frames.astype(np.int32))
        self._bodies.write(h5["bodies"])
        write_column(h5["bodies"], "joint_offset", np.asarray(self._joint_offset, dtype=np.int64))
        dropped = h5.create_group("dropped")
        self._dropped.write(dropped)
        write_strings(dropped, "detail", self._dropped_details)
        h5.attrs["num_samples"] = len(self._samples)
        self._file.commit()

    def __enter__(self) -> "RawFileWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.__exit__(exc_type, exc, tb)


class RawFile(LazyH5Reader):
    """Read access to a ``raw`` file: iterate its samples as :class:`RawSample` objects."""

    kind = "raw"

    def __init__(self, path: Union[str, Path]):
        super().__init__(path)
        self.dataset = get_dataset(self.attrs["dataset"])

    def __len__(self) -> int:
        return int(self.attrs["num_samples"])

    @property
    def dropped(self) -> List[Tuple[str, str, str]]:
        """The files left out at extraction: ``(name, reason, detail)``."""
        table = read_table(self._file()["dropped"], ["name", "reason", "detail"])
        return list(zip(table["name"], table["reason"], table["detail"]))

    def iter_samples(self) -> Iterator[Tuple[dict, RawSample]]:
        """Yield ``(name columns, RawSample)`` for every sample, in store order."""
        h5 = self._file()
        samples = read_table(h5["samples"], list(NAME_COLUMNS) + ["raw_frames", "body_offset",
                                                                    "dropped_offset", "dropped_frames"])
        bodies = read_table(h5["bodies"], ["body_id", "first_frame", "length", "motion", "joint_offset"])
        joints = h5["bodies/joints"]
        body_offset, dropped_offset = samples["body_offset"], samples["dropped_offset"]
        joint_offset = bodies["joint_offset"]
        for i in range(len(body_offset) - 1):
            row = {name: samples[name][i] for name in NAME_COLUMNS}
            lo, hi = int(body_offset[i]), int(body_offset[i + 1])
            block = joints[joint_offset[lo]:joint_offset[hi]] if hi > lo else np.zeros((0, 25, 3), np.float32)
            base = joint_offset[lo]
            body_list = []
            for b in range(lo, hi):
                motion = bodies["motion"][b]
                body_list.append(Body(body_id=str(bodies["body_id"][b]),
                                      joints=block[joint_offset[b] - base:joint_offset[b + 1] - base],
                                      first_frame=int(bodies["first_frame"][b]),
                                      motion=None if np.isnan(motion) else np.float32(motion)))
            dropped = samples["dropped_frames"][dropped_offset[i]:dropped_offset[i + 1]].astype(np.int64)
            yield row, RawSample(name=row["name"], raw_frames=int(samples["raw_frames"][i]),
                                 dropped_frames=dropped, bodies=body_list)


def open_raw(path: Union[str, Path]) -> RawFile:
    return RawFile(path)
