"""Bad entries never stop a build: folders and dangling links named like data files, files in other text
encodings, and coordinates a Kinect cannot report are each recorded with a plain reason, and every other
file is stored unchanged."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, assert_same_samples, shared_path

from cli.skeldata import main as skeldata_main
from skeldata.errors import MalformedFileError
from skeldata.formats.ntu import read_skeleton
from skeldata.store import open_store


def with_one_coordinate(text: str, value: str) -> str:
    """``text`` with the first joint line's x replaced by ``value``."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if len(line.split()) == 12:
            tokens = line.split()
            tokens[0] = value
            lines[k] = " ".join(tokens)
            break
    return "\n".join(lines) + "\n"


@pytest.fixture
def raw_folder(tmp_path) -> Path:
    """The fixture files, plus one of each kind of bad entry under names of samples that are not there."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "ntu60", raw)
    text = (FIXTURES / "ntu60" / "S001C001P022R001A060.skeleton").read_text()
    (raw / "S010C001P001R001A001.skeleton").mkdir()
    (raw / "S010C001P001R001A002.skeleton").symlink_to(raw / "gone.skeleton")
    (raw / "S010C001P001R001A003.skeleton").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (raw / "S010C001P001R001A004.skeleton").write_bytes(text.encode("utf-16"))
    for action, value in ((5, "1e39"), (6, "3.5e38"), (7, "1" + "0" * 40), (8, "1e29")):
        (raw / f"S010C001P001R001A{action:03d}.skeleton").write_text(with_one_coordinate(text, value))
    return raw


EXPECTED = {
    "S010C001P001R001A001": "is a folder, not a file",
    "S010C001P001R001A002": "which does not exist",
    "S010C001P001R001A003": "is encoded as UTF-8 with a byte-order mark; NTU .skeleton files are plain ASCII",
    "S010C001P001R001A004": "is encoded as UTF-16 (little-endian); NTU .skeleton files are plain ASCII",
    "S010C001P001R001A005": "a coordinate too large for float32 (body record 1",
    "S010C001P001R001A006": "a coordinate too large for float32",
    "S010C001P001R001A007": "a coordinate too large for float32",
    "S010C001P001R001A008": "a coordinate of 1e+29 (body record 1",
}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_bad_entries_are_recorded_and_the_rest_stored(ntu_store, raw_folder, tmp_path, jobs):
    out = tmp_path / "store.h5"
    result = CliRunner().invoke(skeldata_main, ["build", "--dataset", "ntu60", "--raw", str(raw_folder), "--out",
                                                str(out), "--jobs", jobs, "--allow-errors", "--quiet"])
    assert result.exit_code == 0, result.output
    dropped = assert_same_samples(out, ntu_store)
    bad = dropped[dropped.name.str.startswith("S010")]
    assert set(bad.reason) == {"malformed"}
    details = dict(zip(bad.name, bad.detail))
    assert details.keys() == EXPECTED.keys()
    for name, expected in EXPECTED.items():
        assert expected in details[name], details[name]
    assert "is a link to " in details["S010C001P001R001A002"]


def test_without_allow_errors_the_build_is_kept_and_exits_1(raw_folder, tmp_path):
    out = tmp_path / "store.h5"
    result = CliRunner().invoke(skeldata_main, ["build", "--dataset", "ntu60", "--raw", str(raw_folder), "--out",
                                                str(out), "--quiet"])
    assert result.exit_code == 1 and out.exists()
    assert "is a folder, not a file" in result.output


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("1\n0\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)      # root reads any file: simulate a denied read
    with pytest.raises(MalformedFileError, match="cannot be read: permission denied"):
        read_skeleton(path)


def test_ucla_files_in_other_encodings_are_named(tmp_path):
    source = shared_path("data", "nw-ucla", "all_sqe", "a01_s01_e00_v01.json")
    raw = tmp_path / "all_sqe"
    raw.mkdir()
    shutil.copy(source, raw / source.name)
    (raw / "a02_s01_e00_v01.json").write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    (raw / "a03_s01_e00_v01.json").mkdir()
    out = tmp_path / "ucla.h5"
    result = CliRunner().invoke(skeldata_main, ["build", "--dataset", "ucla", "--raw", str(raw), "--out", str(out),
                                                "--allow-errors", "--quiet"])
    assert result.exit_code == 0, result.output
    with open_store(out) as built:
        assert built.names == ["a01_s01_e00_v01"]
        details = dict(zip(built.dropped.name, built.dropped.detail))
    assert "is encoded as UTF-8 with a byte-order mark; NW-UCLA JSON files are plain ASCII" in details["a02_s01_e00_v01"]
    assert "is a folder, not a file" in details["a03_s01_e00_v01"]
