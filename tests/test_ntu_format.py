"""The .skeleton reader: values equal to the reference's, both parsers agree, precise errors."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from skeldata.errors import MalformedFileError
from skeldata.formats._decimal import MAX_TOKEN_CHARS, parse_plain_decimals
from skeldata.formats import ntu
from skeldata.formats.ntu import _parse_fast, _parse_strict, parse_name, parse_skeleton, read_skeleton

needs_compiled = pytest.mark.skipif(ntu._compiled is None, reason="the optional C reader was not built "
                                                                  "(or SKELDATA_NO_C_READER is set)")
FAST_PARSERS = [pytest.param(_parse_fast, id="numpy"),
                pytest.param(ntu._parse_compiled, id="compiled", marks=needs_compiled)]

FIXTURE_FILES = sorted((FIXTURES / "ntu60").glob("*.skeleton")) + sorted((FIXTURES / "ntu120").glob("*.skeleton"))


def reference_joints(data: bytes) -> np.ndarray:
    """x, y, z of every joint line, read as the reference reads them (np.array(tokens, float32))."""
    rows = [line.split()[:3] for line in data.decode().splitlines() if len(line.split()) == 12]
    return np.array(rows, dtype=np.float32).reshape(-1, 25, 3) if rows else np.zeros((0, 25, 3), np.float32)


def test_parse_name_fields_and_label():
    fields = parse_name("S017C003P040R002A060.skeleton")
    assert (fields.setup, fields.camera, fields.performer, fields.replication, fields.action) == (17, 3, 40, 2, 60)
    assert fields.label == 59 and fields.name == "S017C003P040R002A060"


@pytest.mark.parametrize("name", ["S01C003P040R002A060", "s017C003P040R002A060", "S017C003P040R002A060x", "notes"])
def test_parse_name_rejects_other_names(name):
    with pytest.raises(ValueError, match="does not match SsssCcccPpppRrrrAaaa"):
        parse_name(name)


@pytest.mark.parametrize("fast_parser", FAST_PARSERS)
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fast_and_strict_parsers_agree_with_the_reference(path, fast_parser):
    data = path.read_bytes()
    fast, strict = fast_parser(data), _parse_strict(data, str(path))
    assert fast is not None, "fixture files are well formed and should take the fast path"
    expected = reference_joints(data)
    for parsed in (fast, strict):
        assert parsed.joints.dtype == np.float32
        assert parsed.joints.tobytes() == expected.tobytes()
    assert fast.body_ids == strict.body_ids
    assert np.array_equal(fast.tracking_ranks(), strict.tracking_ranks())
    assert np.array_equal(fast.record_frame, strict.record_frame)
    assert np.array_equal(fast.dropped_frames, strict.dropped_frames)
    assert fast.raw_frames == strict.raw_frames == int(data.split()[0])


@pytest.mark.parametrize("fast_parser, reads_tabs", [pytest.param(_parse_fast, False, id="numpy"),
                                                     pytest.param(ntu._parse_compiled, True, id="compiled",
                                                                  marks=needs_compiled)])
@pytest.mark.parametrize("separator", [" ", "\t"], ids=["spaces", "a-tab"])
def test_fast_paths_handle_exponents_tabs_and_signs(fast_parser, reads_tabs, separator):
    """Both fast paths read exponents and signs themselves; a tab is read by the C reader and handed
    to the strict parser by the numpy one (it only splits on spaces; module docstring)."""
    line = f"-8.967501E-05{separator}+0.25 -0 250.1 200.2 960.3 540.4 0.9 0.1 0.1 1e-3 2"
    text = "1\r\n1\r\n" + body("42", 0.5, joint_line=line)
    parsed = fast_parser(text.encode())
    strict = _parse_strict(text.encode(), "x")
    assert strict.joints[0, 0].tolist() == [np.float32(-8.967501e-05), 0.25, 0.0]
    assert np.signbit(strict.joints[0, 0, 2])
    if separator == "\t" and not reads_tabs:
        assert parsed is None
    else:
        assert parsed is not None, "the fast path gave a well-formed file to the strict parser"
        assert parsed.joints.tobytes() == strict.joints.tobytes()


def test_crlf_and_lf_give_the_same_records():
    data = FIXTURE_FILES[0].read_bytes()
    crlf = parse_skeleton(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    lf = parse_skeleton(data.replace(b"\r\n", b"\n"))
    assert crlf.joints.tobytes() == lf.joints.tobytes() and crlf.body_ids == lf.body_ids


def test_empty_frames_are_recorded_and_bodies_keep_their_ids():
    text = "3\r\n0\r\n1\r\n" + body("72057594037931101", 0.5) + "0\r\n"
    parsed = parse_skeleton(text.encode())
    assert parsed.raw_frames == 3 and parsed.valid_frames == 1
    assert parsed.dropped_frames.tolist() == [0, 2]
    assert parsed.body_ids == ["72057594037931101"]
    assert parsed.record_frame.tolist() == [0]
    assert parsed.joints[0, 0].tolist() == pytest.approx([0.5, 0.25, 2.5])


def body(body_id: str, x: float, joints: int = 25, joint_line: str = None) -> str:
    line = joint_line or f"{x} 0.25 2.5 250.1 200.2 960.3 540.4 0.9 0.1 0.1 0.1 2"
    return f"{body_id} 0 1 1 1 1 0 0.01 -0.02 2\r\n{joints}\r\n" + "".join(f"{line}\r\n" for _ in range(joints))


def decimal_tokens() -> list:
    rng = random.Random(4)
    tokens = ["0", "-0", "1", "-1.5", "0.1234567", "-0.2394933", "3.785664", "5.", ".5", "-.5", "+2.25",
              "123456789012345", "0.000000000000001", "9007199254740993", "1234567890123456789"]
    for _ in range(3000):
        digits = rng.randint(1, 9)
        mantissa = str(rng.randrange(10 ** (digits - 1), 10 ** digits))
        dot = rng.randint(0, digits)
        tokens.append(("-" if rng.random() < 0.5 else "") + mantissa[:dot] + "." + mantissa[dot:])
    return tokens


def test_decimal_fast_path_is_correctly_rounded():
    tokens = decimal_tokens()
    text = " ".join(tokens).encode()
    buf = np.frombuffer(text + b" " * MAX_TOKEN_CHARS, dtype=np.uint8)
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    starts = np.array(starts)
    ends = starts + np.array([len(t) for t in tokens])
    values, handled = parse_plain_decimals(buf, starts, ends)
    expected = np.array([float(t) for t in tokens])
    assert handled[:12].all() and not handled[12:15].any()  # over 15 digits: left to Python's float
    assert np.array_equal(values[handled].view(np.uint64), expected[handled].view(np.uint64))  # -0.0 included
    assert np.signbit(values[1])


# ---------------------------------------------------------------------------------------------- errors

def malformed(text: str) -> MalformedFileError:
    """The strict parser's error for ``text``, after checking that both fast paths refuse it."""
    assert _parse_fast(text.encode()) is None
    if ntu._compiled is not None:
        assert ntu._parse_compiled(text.encode()) is None
    with pytest.raises(MalformedFileError) as info:
        parse_skeleton(text.encode(), "S001C001P001R001A001.skeleton")
    return info.value


def test_truncated_file_names_the_file_and_the_line():
    cut = "".join(body("1", 0.5).splitlines(keepends=True)[:5])  # body line, joint count, 3 joints
    error = malformed("2\r\n1\r\n" + body("1", 0.5) + "1\r\n" + cut)
    assert error.path == "S001C001P001R001A001.skeleton"
    assert error.line == 36
    assert error.reason == "file ends early: expected joint 4 of frame 2, body 1"
    assert str(error).startswith("S001C001P001R001A001.skeleton, line ")


def test_non_numeric_coordinate():
    bad = "0.1 abc 2.5 250.1 200.2 960.3 540.4 0.9 0.1 0.1 0.1 2"
    error = malformed("1\r\n1\r\n" + body("1", 0.5, joint_line=bad))
    assert error.line == 5 and "a number" in error.reason and "'abc'" in error.reason


def test_non_numeric_token_in_an_unused_field_is_also_an_error():
    bad = "0.1 0.2 2.5 250.1 200.2 960.3 540.4 0.9 0.1 0.1 nan 2"
    error = malformed("1\r\n1\r\n" + body("1", 0.5, joint_line=bad))
    assert error.line == 5 and "not finite" in error.reason


def test_joint_count_other_than_25():
    error = malformed("1\r\n1\r\n" + body("1", 0.5, joints=24))
    assert error.line == 4 and "expected 25 joints" in error.reason and "found 24" in error.reason


def test_wrong_number_of_values_on_a_joint_line():
    error = malformed("1\r\n1\r\n" + body("1", 0.5, joint_line="0.1 0.2 2.5 250.1 200.2"))
    assert error.line == 5 and "12 values" in error.reason and "found 5" in error.reason


def test_trailing_data_after_the_last_frame():
    error = malformed("1\r\n1\r\n" + body("1", 0.5) + "7\r\n")
    assert error.line == 30 and "after the last of the 1 frames" in error.reason


@pytest.mark.parametrize("text, reason", [("", "file is empty"), ("abc\r\n", "the frame count"),
                                          ("1\r\n-1\r\n", "integer >= 0"), ("2\r\n0\r\n", "ends early")])
def test_bad_counts(text, reason):
    assert reason in malformed(text).reason


def test_read_skeleton_names_the_path(tmp_path: Path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_bytes(b"1\r\n1\r\n")
    with pytest.raises(MalformedFileError, match=str(path)):
        read_skeleton(path)


@needs_compiled
def test_compiled_reader_ranks_tracking_ids_by_first_appearance():
    body = "{id} 0 1 1 1 1 0 0.1 0.2 2\n25\n" + "0.5 0.25 2.5 1 2 3 4 1 0 0 0 2\n" * 25
    frames = [["7", "3"], ["3"], ["9", "7", "3"]]
    text = f"{len(frames)}\n" + "".join(f"{len(ids)}\n" + "".join(body.format(id=i) for i in ids) for ids in frames)
    parsed = ntu._parse_compiled(text.encode())
    assert parsed.body_ids == ["7", "3", "3", "9", "7", "3"]
    assert parsed.body_index.tolist() == [0, 1, 1, 2, 0, 1]
    assert parsed.body_ids[2] is parsed.body_ids[1]  # one str per tracking id


@needs_compiled
def test_a_file_with_more_tracking_ids_than_the_compiled_reader_tracks_is_parsed_by_python():
    body = "{id} 0 1 1 1 1 0 0.1 0.2 2\n25\n" + "0.5 0.25 2.5 1 2 3 4 1 0 0 0 2\n" * 25
    text = "70\n" + "".join(f"1\n{body.format(id=1000 + i)}" for i in range(70))
    assert ntu._parse_compiled(text.encode()) is None
    records = parse_skeleton(text.encode())
    assert records.tracking_ranks().tolist() == list(range(70)) and len(records.joints) == 70


@needs_compiled
def test_compiled_reader_gives_the_same_records_from_threads():
    """The C reader parses without the GIL (a build parses files in threads); a file with an exponent in x,
    y or z needs CPython's conversion and is parsed again holding it: same values either way."""
    from concurrent.futures import ThreadPoolExecutor
    plain = [path.read_bytes() for path in FIXTURE_FILES]
    lines = plain[0].split(b"\n")
    joint_line = next(i for i, line in enumerate(lines) if len(line.split()) == 12)
    tokens = lines[joint_line].split()
    tokens[0] = b"%.6E" % float(tokens[0])
    lines[joint_line] = b" ".join(tokens)
    with_exponent = b"\n".join(lines)
    datas = plain + [with_exponent] * 3
    expected = [_parse_strict(data, "file") for data in datas]
    with ThreadPoolExecutor(4) as threads:
        for _ in range(3):
            for parsed, strict in zip(threads.map(ntu._parse_compiled, datas), expected):
                assert parsed.joints.tobytes() == strict.joints.tobytes()
                assert parsed.body_ids == strict.body_ids
                assert np.array_equal(parsed.tracking_ranks(), strict.tracking_ranks())
