"""NW-UCLA: the all_sqe reader and the ucla store."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_path
from skeldata import open_store
from skeldata.build import build
from skeldata.errors import MalformedFileError
from skeldata.formats.ucla import parse_ucla_name, read_ucla


def write_sequence(folder, name, frames=3, label=None, **overrides):
    record = {"file_name": name, "skeletons": (np.arange(frames * 60) / 64).reshape(frames, 20, 3).tolist(),
              "label": parse_ucla_name(name).label + 1 if label is None else label}
    record.update(overrides)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record))
    return path


def test_name_fields_and_labels():
    fields = parse_ucla_name("a12_s03_e04_v02.json")
    assert (fields.action, fields.subject, fields.take, fields.view, fields.label) == (12, 3, 4, 2, 9)
    with pytest.raises(ValueError, match="not one of the ten NW-UCLA actions"):
        parse_ucla_name("a07_s01_e00_v01")
    with pytest.raises(ValueError, match="aAA_sSS_eEE_vVV"):
        parse_ucla_name("a1_s01_e00_v01")


def test_reader_keeps_the_values_and_checks_the_file(tmp_path):
    path = write_sequence(tmp_path, "a01_s01_e00_v01", frames=1)
    joints = read_ucla(path)
    assert joints.dtype == np.float32 and joints.shape == (1, 20, 3) and joints[0, 1, 0] == 3 / 64
    for overrides, message in [({"label": 5}, "label 5 does not match action a01"),
                               ({"file_name": "a02_s01_e00_v01"}, "does not match the file's name"),
                               ({"skeletons": [[[1, 2]]]}, "expected (T >= 1, 20, 3)"),
                               ({"skeletons": []}, "expected (T >= 1, 20, 3)"),
                               ({"skeletons": [[[0.5, 1e39, 0]] * 20]}, "a coordinate too large for float32 "
                                                                        "(frame 1, joint 1, y)"),
                               ({"skeletons": [[[0.5, 0, 0]] * 19 + [[0, 0, -250.0]]]},
                                "a coordinate of -250 (frame 1, joint 20, z) is not a distance in metres")]:
        bad = write_sequence(tmp_path, "a01_s01_e00_v01", **overrides)
        with pytest.raises(MalformedFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_ucla(bad)
    (tmp_path / "a01_s01_e00_v01.json").write_text("{not json")
    with pytest.raises(MalformedFileError, match="not valid JSON"):
        read_ucla(tmp_path / "a01_s01_e00_v01.json")


def test_small_ucla_store(tmp_path):
    raw = tmp_path / "all_sqe"
    raw.mkdir()
    for name in ("a01_s01_e00_v01", "a02_s01_e00_v03", "a12_s02_e01_v02", "a03_s01_e00_v01"):
        write_sequence(raw, name, frames=2)
    (raw / "a04_s01_e00_v01.json").write_text("[]")
    summary = build([raw], tmp_path / "ucla.h5", "ucla")
    assert summary.samples == 4 and dict(summary.dropped) == {"malformed": 1}
    with open_store(tmp_path / "ucla.h5") as store:
        assert store.layout.name == "ucla20" and store.sequence(0).shape == (2, 1, 20, 3)
        table = store.samples
        assert sorted(table.columns) == ["action", "label", "n_bodies", "n_frames", "name", "subject", "take", "view"]
        names = store.names
        for name, row in zip(names, table.itertuples()):
            fields = parse_ucla_name(name)
            assert (row.name, row.action, row.subject, row.take, row.view, row.label, row.n_frames, row.n_bodies) == \
                (name, fields.action, fields.subject, fields.take, fields.view, fields.label, 2, 1)
        assert [names[i] for i in store.split("xview", "train")] == ["a01_s01_e00_v01", "a03_s01_e00_v01",
                                                                    "a12_s02_e01_v02"]
        assert [names[i] for i in store.split("xview", "test")] == ["a02_s01_e00_v03"]


def test_the_real_nw_ucla_set(nw_ucla_store):
    raw = shared_path("data", "nw-ucla", "all_sqe")
    with open_store(nw_ucla_store) as store:
        assert len(store) == 1484 and len(store.dropped) == 0
        assert len(store.split("xview", "train")) == 1020 and len(store.split("xview", "test")) == 464
        table = store.samples
        assert table.n_frames.min() == 1 and table.n_frames.max() == 201
        for name in ("a01_s01_e00_v01", "a12_s10_e04_v03", table.name[table.n_frames.idxmin()]):
            record = json.loads((raw / f"{name}.json").read_text())
            stored = store.sequence(store.index_of(name))
            assert np.array_equal(stored[:, 0], np.asarray(record["skeletons"], dtype=np.float32))
            assert table.label[store.index_of(name)] == record["label"] - 1
