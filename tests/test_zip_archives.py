"""``--raw`` takes zip files: the members are read in place by the workers, the store equals the one built
from the unpacked folder, and a damaged member or an unreadable zip is reported like a bad file."""
from __future__ import annotations

import json
import re
import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, assert_same_samples, shared_path

from cli.skeldata import main as skeldata_main
from skeldata.build import build, extract
from skeldata.formats import _archives

NTU = FIXTURES / "ntu60"
NTU_FILES = sorted(NTU.glob("*.skeleton"))
FOLDER = "nturgb+d_skeletons/"
#: Attributes that say when and from where a file was written, not what it holds.
PROVENANCE = {"created", "sources"}


def make_zip(path: Path, files, folder: str = FOLDER, compression=zipfile.ZIP_DEFLATED, extra=()) -> Path:
    """A zip of ``files`` under ``folder`` (with an entry for each folder, as zip tools write them), plus
    ``extra`` ``(member, bytes)`` or ``(ZipInfo, bytes)`` pairs."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        parts = folder.rstrip("/").split("/") if folder else []
        for depth in range(1, len(parts) + 1):
            archive.writestr("/".join(parts[:depth]) + "/", b"")
        for file in files:
            archive.write(file, folder + file.name)
        for member, data in extra:
            archive.writestr(member, data)
    return path


def run(*args):
    return CliRunner().invoke(skeldata_main, [str(a) for a in args])


def datasets(f: h5py.File) -> dict:
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = obj

    f.visititems(visit)
    return found


def same(a, b) -> bool:
    """Equal type, shape and values: bit for bit (NaN included), or by value for text objects."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return np.array_equal(a, b) if a.dtype == object else a.tobytes() == b.tobytes()


def assert_same_contents(built: Path, reference: Path) -> None:
    """Every dataset (stream arrays, sample columns, splits, the dropped table) equal in type, shape, values
    and attributes; the root attributes equal but for when and from where the file was written."""
    with h5py.File(built, "r") as a, h5py.File(reference, "r") as b:
        ours, theirs = datasets(a), datasets(b)
        assert sorted(ours) == sorted(theirs)
        for name, expected in theirs.items():
            assert same(ours[name][()], expected[()]), name
            assert dict(ours[name].attrs).keys() == dict(expected.attrs).keys(), name
            for key, value in expected.attrs.items():
                assert same(ours[name].attrs[key], value), (name, key)
        assert a.attrs.keys() == b.attrs.keys()
        for key in set(b.attrs) - PROVENANCE:
            assert same(a.attrs[key], b.attrs[key]), key


def sources(path: Path) -> list:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["sources"])


# ------------------------------------------------------------------------------------- same as folders

@pytest.mark.parametrize("folder, compression, jobs", [
    ("", zipfile.ZIP_DEFLATED, "1"),
    (FOLDER, zipfile.ZIP_DEFLATED, "2"),
    ("NTU RGB+D/raw/" + FOLDER, zipfile.ZIP_STORED, "1"),
])
def test_a_zip_builds_the_same_store_as_its_folder(ntu_store, tmp_path, folder, compression, jobs):
    noise = [("README.txt", b"not a skeleton"), (f"__MACOSX/{folder}._{NTU_FILES[0].name}", b"\x00\x05\x16\x07"),
             ("empty folder/", b"")]
    archive = make_zip(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", NTU_FILES, folder, compression, noise)
    out = tmp_path / "zip.h5"
    result = run("build", "--dataset", "ntu60", "--raw", archive, "--out", out, "--jobs", jobs, "--quiet")
    assert result.exit_code == 0, result.output
    assert re.search(r"files +14\n", result.output)
    assert_same_contents(out, ntu_store)
    assert sources(out) == [str(archive.resolve())]


def test_the_staged_extract_reads_zips_too(tmp_path):
    archive = make_zip(tmp_path / "ntu.zip", NTU_FILES)
    extract([NTU], tmp_path / "folder-raw.h5", "ntu60")
    summary = extract([archive], tmp_path / "zip-raw.h5", "ntu60", jobs=2)
    assert summary.files == 14 and not summary.errors
    assert_same_contents(tmp_path / "zip-raw.h5", tmp_path / "folder-raw.h5")
    assert sources(tmp_path / "zip-raw.h5") == [str(archive.resolve())]


def test_folders_and_zips_mix(ntu_store, tmp_path):
    folder = tmp_path / "part1"
    folder.mkdir()
    for file in NTU_FILES[:6]:
        shutil.copy(file, folder)
    archive = make_zip(tmp_path / "part2.zip", NTU_FILES[6:])
    out = tmp_path / "mixed.h5"
    build([folder, archive], out, "ntu60", jobs=2)
    assert_same_contents(out, ntu_store)
    assert sources(out) == [str(folder.resolve()), str(archive.resolve())]


def test_each_process_opens_a_zip_once(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "ntu.zip", NTU_FILES)
    opened = []

    class Counting(zipfile.ZipFile):
        def __init__(self, file, *args, **kwargs):
            opened.append(str(file))
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(_archives.zipfile, "ZipFile", Counting)
    summary = build([archive], tmp_path / "s.h5", "ntu60")
    assert summary.samples == 12
    assert opened == [str(archive)] * 2            # listed once, then every member read through one handle
    assert not _archives._open_archives            # and closed when the build is done


def test_nw_ucla_from_a_zip_equals_the_folder(tmp_path):
    source = shared_path("data", "nw-ucla", "all_sqe")
    files = sorted(source.glob("a0[1-3]_s0[12]_*.json"))          # three actions, two subjects, every view
    assert len(files) > 20
    folder = tmp_path / "all_sqe"
    folder.mkdir()
    for file in files:
        shutil.copy(file, folder)
    build([folder], tmp_path / "folder.h5", "ucla")
    archive = make_zip(tmp_path / "all_sqe.zip", files, folder="all_sqe/")
    summary = build([archive], tmp_path / "zip.h5", "ucla", jobs=2)
    assert summary.samples == len(files) and not summary.dropped
    assert_same_contents(tmp_path / "zip.h5", tmp_path / "folder.h5")
    assert sources(tmp_path / "zip.h5") == [str(archive.resolve())]


# ------------------------------------------------------------------------------------------ bad members

#: central directory record: field -> (offset from the signature, struct format)
_CENTRAL_FIELDS = {"flag_bits": (8, "<H"), "compress_type": (10, "<H"), "compress_size": (20, "<I"),
                   "file_size": (24, "<I")}


def patch_central_directory(path: Path, member: str, **fields) -> None:
    """Overwrite fields of ``member``'s record in the zip's central directory (what zipfile reads)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length].decode() == member:
            for field, value in fields.items():
                offset, fmt = _CENTRAL_FIELDS[field]
                struct.pack_into(fmt, data, at + offset, value)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 46)
    raise AssertionError(f"{member} is not in {path}")


def flip_a_byte(path: Path, member: str, position: float = 0.5) -> None:
    """Change one byte inside ``member``'s stored (or compressed) data, leaving its recorded CRC-32."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    data[start + int(info.compress_size * position)] ^= 0x5A
    path.write_bytes(bytes(data))


def bad(action: int) -> str:
    return f"{FOLDER}S010C001P001R001A{action:03d}.skeleton"


TEXT = NTU_FILES[0].read_bytes()
_LINK = zipfile.ZipInfo(bad(8))
_LINK.create_system, _LINK.external_attr = 3, 0o120777 << 16

EXPECTED = {
    "S010C001P001R001A001": "is damaged in the zip: its bytes do not match the CRC-32 checksum the zip records",
    "S010C001P001R001A002": "is damaged in the zip: its compressed data cannot be decompressed (Error -3 ",
    "S010C001P001R001A003": "is encrypted (the zip has a password); skeldata reads unencrypted zips",
    "S010C001P001R001A004": "is compressed with deflate64 (zip method 9), which Python's zipfile cannot read",
    "S010C001P001R001A005": "file is empty: expected the frame count on line 1",
    "S010C001P001R001A006": "is a folder, not a file",
    "S010C001P001R001A007": "in the zip: ",    # "is cut short in the zip" (Python >= 3.12: overlapping entries)
    "S010C001P001R001A008": "is a symbolic link stored in the zip, not a file",
    "S010C001P001R001A009": "is a folder, not a file",
}


@pytest.fixture
def damaged_zip(tmp_path) -> Path:
    """The fixture files, plus one damaged or unusual member of each kind under names of samples not there."""
    path = tmp_path / "damaged.zip"
    stored = zipfile.ZipInfo(bad(1))                                  # stored: a changed byte fails the CRC
    last = zipfile.ZipInfo(bad(7))                                    # last member: its data runs into the index
    make_zip(path, NTU_FILES, extra=[(stored, TEXT), (bad(2), TEXT), (bad(3), TEXT), (bad(4), TEXT),
                                     (bad(5), b""), (bad(6) + "/", b""), (_LINK, b"../elsewhere.skeleton"),
                                     (bad(9) + "/notes.txt", b"a folder implied by its member"), (last, TEXT)])
    flip_a_byte(path, bad(1))
    flip_a_byte(path, bad(2), position=0)                             # deflated: an invalid block type
    patch_central_directory(path, bad(3), flag_bits=0x1)
    patch_central_directory(path, bad(4), compress_type=9)
    patch_central_directory(path, bad(7), compress_size=len(TEXT) * 4, file_size=len(TEXT) * 4)
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_damaged_members_are_recorded_and_the_rest_stored(ntu_store, damaged_zip, tmp_path, jobs):
    out = tmp_path / "store.h5"
    result = run("build", "--dataset", "ntu60", "--raw", damaged_zip, "--out", out, "--jobs", jobs,
                 "--allow-errors", "--quiet")
    assert result.exit_code == 0, result.output
    assert re.search(r"files +23\n", result.output) and re.search(r"malformed \(errors\) +9 ", result.output)
    dropped = assert_same_samples(out, ntu_store)
    damaged = dropped[dropped.name.str.startswith("S010")]
    assert set(damaged.reason) == {"malformed"}
    details = dict(zip(damaged.name, damaged.detail))
    assert details.keys() == EXPECTED.keys()
    for name, expected in EXPECTED.items():
        member = f"{FOLDER}{name}.skeleton" + ("/" if name.endswith(("A006", "A009")) else "")
        assert details[name].startswith((f"{damaged_zip}, member {member}: ",
                                         f"{damaged_zip}, member {member}, line 1: ")), details[name]
        assert expected in details[name], details[name]


def test_without_allow_errors_a_damaged_member_makes_the_build_exit_1(damaged_zip, tmp_path):
    out = tmp_path / "store.h5"
    result = run("build", "--dataset", "ntu60", "--raw", damaged_zip, "--out", out, "--quiet")
    assert result.exit_code == 1 and out.exists()
    assert (f"skeldata: error: {damaged_zip}, member {bad(1)}: is damaged in the zip: its bytes do not match "
            f"the CRC-32 checksum") in result.stderr
    assert "9 file(s) could not be parsed" in result.stderr


# ------------------------------------------------------------------------------------------ bad zips

def _truncated(path: Path) -> None:
    data = make_zip(path, NTU_FILES).read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _damaged_index(path: Path) -> None:
    data = bytearray(make_zip(path, NTU_FILES).read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at:at + 4] = b"PK\x09\x09"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make, message", [
    (_truncated, "not a folder or a zip file (no end-of-archive record: another kind of file, or a zip cut short"),
    (lambda path: path.write_text("S001C001P001R001A001.skeleton\n"), "not a folder or a zip file"),
    (_damaged_index, "a damaged zip file: its index (central directory) cannot be read (Bad magic number for "
                     "central directory)"),
    (lambda path: make_zip(path, [], extra=[("notes.txt", b"")]), "no .skeleton file in this zip file"),
])
def test_a_zip_that_cannot_be_read_is_named_in_one_line(tmp_path, make, message):
    archive = tmp_path / "nturgbd_skeletons_s001_to_s017.zip"
    make(archive)
    out = tmp_path / "s.h5"
    result = run("build", "--dataset", "ntu60", "--raw", NTU, "--raw", archive, "--out", out, "--quiet")
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"skeldata: error: --raw {archive}: {message}"), result.stderr


def test_a_name_in_a_folder_and_a_zip_is_refused(tmp_path):
    archive = make_zip(tmp_path / "ntu.zip", NTU_FILES[:1])
    result = run("build", "--dataset", "ntu60", "--raw", NTU, "--raw", archive, "--out", tmp_path / "s.h5")
    assert result.exit_code == 1 and not (tmp_path / "s.h5").exists()
    name = NTU_FILES[0].stem
    assert (f"sample {name} is in two files: {NTU_FILES[0]} and {archive}, member {FOLDER}{name}.skeleton"
            in result.stderr)


def test_a_name_twice_in_one_zip_is_refused(tmp_path):
    archive = make_zip(tmp_path / "ntu.zip", NTU_FILES, extra=[(f"copy/{NTU_FILES[3].name}", b"")])
    result = run("extract", "--dataset", "ntu60", "--raw", archive, "--out", tmp_path / "raw.h5")
    assert result.exit_code == 1 and not (tmp_path / "raw.h5").exists()
    name = NTU_FILES[3].stem
    assert (f"sample {name} is in two files: {archive}, member {FOLDER}{name}.skeleton and {archive}, member "
            f"copy/{name}.skeleton") in result.stderr
