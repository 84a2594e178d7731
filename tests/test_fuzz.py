"""Fuzzing the readers and the pipeline with mutated NTU ``.skeleton`` and NW-UCLA JSON files (hypothesis):
truncation, deleted and duplicated lines, garbage tokens, huge and negative counts, NaN and inf, wrong
joint counts, binary noise, other encodings, CRLF, empty files. Over 1,000 mutated files per run: none
crashes or hangs the pipeline, each is stored or dropped with a reason, mutations that keep a file valid
leave its numbers unchanged, and a build over a folder of them stores every valid file as before."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

hypothesis = pytest.importorskip("hypothesis", reason="fuzzing needs the test extra: pip install '.[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from skeldata.build import build  # noqa: E402
from skeldata.errors import DROP_REASONS  # noqa: E402
from skeldata.layouts import PLAUSIBLE_COORDINATE  # noqa: E402
from skeldata.process import process_ntu_file, process_ntu_file_stgcn, process_ucla_file  # noqa: E402
from skeldata.store import open_store  # noqa: E402

NTU_FILES = sorted((FIXTURES / "ntu60").glob("*.skeleton"))[:4]
NTU_BYTES = [path.read_bytes() for path in NTU_FILES]
GARBAGE = [b"abc", b"nan", b"NaN", b"inf", b"-inf", b"1e999", b"1e39", b"3.5e38", b"1" + b"0" * 40, b"", b"\x00\x01",
           b"-", b".", b"1.2.3", b"0x10", b"999999999999", b"-7", b"\xff\xfe", b"1,5", b"+", b"1e-400"]
COUNTS = [b"0", b"-1", b"26", b"24", b"999999999", b"100000000000000000000", b"3", b"1.5", b"x"]

FUZZ = settings(max_examples=600, deadline=5000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _lines(data: bytes):
    return data.split(b"\n")


@st.composite
def ntu_mutations(draw):
    """(mutated bytes, whether the mutation keeps the file's numbers) of a fixture file."""
    base = draw(st.sampled_from(NTU_BYTES))
    kind = draw(st.sampled_from(["truncate", "delete", "duplicate", "token", "count", "noise", "encoding",
                                 "crlf", "lf", "empty", "joint_count", "swap"]))
    lines = _lines(base)
    line = draw(st.integers(0, len(lines) - 1))
    if kind == "truncate":
        return base[:draw(st.integers(0, len(base) - 1))], False
    if kind == "delete":
        return b"\n".join(lines[:line] + lines[line + 1:]), False
    if kind == "duplicate":
        return b"\n".join(lines[:line + 1] + lines[line:]), False
    if kind == "token":
        tokens = lines[line].split(b" ")
        position = draw(st.integers(0, len(tokens) - 1))
        tokens[position] = draw(st.sampled_from(GARBAGE))
        lines[line] = b" ".join(tokens)
        return b"\n".join(lines), False
    if kind in ("count", "joint_count"):
        # the frame count (line 0), a body count, or the joint count "25" of a body
        candidates = [k for k, text in enumerate(lines) if text.strip() in (b"25",)] if kind == "joint_count" else \
            [0] + [k for k, text in enumerate(lines[:200]) if len(text.split()) == 1]
        if candidates:
            k = draw(st.sampled_from(candidates))
            lines[k] = draw(st.sampled_from(COUNTS))
        return b"\n".join(lines), False
    if kind == "noise":
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.binary(min_size=1, max_size=64)) + base[at:], False
    if kind == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-be", "utf-32", "utf-8-sig"]))
        return base.decode("ascii").encode(encoding), False
    if kind == "crlf":
        return base.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), True
    if kind == "lf":
        return base.replace(b"\r\n", b"\n"), True
    if kind == "empty":
        return b"", False
    first, second = sorted(draw(st.tuples(st.integers(0, len(lines) - 1), st.integers(0, len(lines) - 1))))
    lines[first], lines[second] = lines[second], lines[first]
    return b"\n".join(lines), first == second or lines[first] == lines[second]


def check_outcome(outcome, path: Path) -> None:
    """Either a sample with sane numbers, or a drop with a known reason that names the file."""
    if outcome.reason is None:
        assert outcome.joints is not None and outcome.joints.dtype == np.float32
        assert np.isfinite(outcome.joints).all() and np.abs(outcome.joints).max(initial=0) <= PLAUSIBLE_COORDINATE
    else:
        assert outcome.reason in DROP_REASONS
        if outcome.reason == "malformed":
            assert str(path) in outcome.detail and "\n" not in outcome.detail


@pytest.fixture(scope="module")
def reference_outcomes():
    return {data: process_ntu_file(("S001C001P001R001A001", path), "ntu60") for data, path in zip(NTU_BYTES, NTU_FILES)}


@FUZZ
@given(mutation=ntu_mutations())
def test_mutated_skeleton_files(mutation, tmp_path_factory, reference_outcomes):
    data, keeps_numbers = mutation
    path = tmp_path_factory.getbasetemp() / "fuzz" / "S001C001P001R001A001.skeleton"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    outcome = process_ntu_file(("S001C001P001R001A001", path), "ntu60")
    check_outcome(outcome, path)
    if keeps_numbers:
        original = next(reference_outcomes[base] for base in NTU_BYTES
                        if base.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n"))
        assert outcome.reason == original.reason and np.array_equal(outcome.joints, original.joints)


@pytest.fixture(scope="module")
def stgcn_outcomes():
    return {data: process_ntu_file_stgcn(("S001C001P001R001A001", path), "ntu60")
            for data, path in zip(NTU_BYTES, NTU_FILES)}


@settings(max_examples=300, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutation=ntu_mutations())
def test_mutated_skeleton_files_through_the_stgcn_pipeline(mutation, tmp_path_factory, stgcn_outcomes):
    """``--pipeline stgcn``: the same handling of bad files, 300 frames for every stored sample."""
    data, keeps_numbers = mutation
    path = tmp_path_factory.getbasetemp() / "fuzz-stgcn" / "S001C001P001R001A001.skeleton"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    outcome = process_ntu_file_stgcn(("S001C001P001R001A001", path), "ntu60")
    check_outcome(outcome, path)
    if outcome.reason is None:
        assert outcome.joints.shape == (300, 2, 25, 3)
    if keeps_numbers:
        original = next(stgcn_outcomes[base] for base in NTU_BYTES
                        if base.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n"))
        assert outcome.reason == original.reason and outcome.joints.tobytes() == original.joints.tobytes()


def ucla_record(frames: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"file_name": "a01_s01_e00_v01", "label": 1,
            "skeletons": np.round(rng.uniform(-1, 3, size=(frames, 20, 3)), 6).tolist()}


@st.composite
def ucla_mutations(draw):
    record = ucla_record(draw(st.integers(1, 6)), draw(st.integers(0, 1000)))
    text = json.dumps(record)
    kind = draw(st.sampled_from(["truncate", "token", "shape", "noise", "encoding", "value", "empty", "keys",
                                 "pretty"]))
    if kind == "truncate":
        return text[:draw(st.integers(0, len(text) - 1))].encode(), False
    if kind == "token":
        numbers = [k for k, c in enumerate(text) if c.isdigit()]
        at = draw(st.sampled_from(numbers))
        return (text[:at] + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "1e39", "x", "",
                                                  "1" + "0" * 40, "[]", "null", "\"1\""])) + text[at + 1:]).encode(), False
    if kind == "shape":
        frame = record["skeletons"][0]
        change = draw(st.sampled_from(["drop_joint", "add_joint", "drop_axis", "flat"]))
        if change == "drop_joint":
            frame.pop()
        elif change == "add_joint":
            frame.append([0.0, 0.0, 0.0])
        elif change == "drop_axis":
            frame[0].pop()
        else:
            record["skeletons"] = [1.0, 2.0]
        return json.dumps(record).encode(), False
    if kind == "noise":
        at = draw(st.integers(0, len(text)))
        return text[:at].encode() + draw(st.binary(min_size=1, max_size=32)) + text[at:].encode(), False
    if kind == "encoding":
        return text.encode(draw(st.sampled_from(["utf-16", "utf-32", "utf-8-sig"]))), False
    if kind == "value":
        record["skeletons"][0][0][draw(st.integers(0, 2))] = draw(st.sampled_from([1e29, -250.0, 1e39]))
        return json.dumps(record).encode(), False
    if kind == "empty":
        return b"", False
    if kind == "keys":
        del record[draw(st.sampled_from(["file_name", "label", "skeletons"]))]
        return json.dumps(record).encode(), "skeletons" in record
    return json.dumps(record, indent=draw(st.integers(0, 4))).replace("\n", "\r\n").encode(), True


@settings(max_examples=450, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutation=ucla_mutations())
def test_mutated_ucla_files(mutation, tmp_path_factory):
    data, keeps_numbers = mutation
    path = tmp_path_factory.getbasetemp() / "fuzz-ucla" / "a01_s01_e00_v01.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    outcome = process_ucla_file(("a01_s01_e00_v01", path))
    check_outcome(outcome, path)
    if keeps_numbers:
        assert outcome.reason is None
        expected = np.asarray(json.loads(data)["skeletons"], dtype=np.float32)
        assert np.array_equal(outcome.joints[:, 0], expected)


def test_a_build_over_a_folder_of_mutations_loses_nothing(ntu_store, tmp_path):
    """Seeded mutations of every kind beside the valid files: each file is stored or recorded with its
    reason, and the valid ones are stored exactly as in the clean build."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "ntu60", raw)
    rng = random.Random(20261130)
    names = []
    for k in range(60):
        data = bytearray(rng.choice(NTU_BYTES))
        kind = k % 6
        if kind == 0:
            data = data[:rng.randrange(len(data))]
        elif kind == 1:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(16))
        elif kind == 2:
            data = bytes(data).decode().encode("utf-16")
        elif kind == 3:
            lines = bytes(data).split(b"\n")
            del lines[rng.randrange(len(lines))]
            data = b"\n".join(lines)
        elif kind == 4:
            data = bytes(data).replace(b" ", b" nan ", 1)
        else:
            data = b""
        name = f"S020C001P{k + 1:03d}R001A001"
        (raw / f"{name}.skeleton").write_bytes(bytes(data))
        names.append(name)
    out = tmp_path / "fuzzed.h5"
    summary = build([raw], out, "ntu60")
    with open_store(out) as built, open_store(ntu_store) as clean:
        stored, dropped = set(built.names), set(built.dropped.name)
        assert stored | dropped == set(clean.names) | set(clean.dropped.name) | set(names)
        assert not stored & dropped
        for i, name in enumerate(clean.names):
            assert np.array_equal(built.sequence(built.index_of(name)), clean.sequence(i))
    assert summary.files == len(clean.names) + len(clean.dropped.name) + len(names)
