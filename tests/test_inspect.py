"""skeldata stats and show: exact statistics of the fixture stores, and the drawings (verify: test_verify.py)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cli.skeldata import main
from skeldata import open_store
from skeldata.stats import compute_stats, histogram_edges

MISSING_MATPLOTLIB = "needs matplotlib: pip install 'skeldata[plot]'"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason="the image tests need the optional extra: pip install 'skeldata[plot]'")


# --------------------------------------------------------------------------------------------- stats

def test_stats_of_the_ntu60_fixture_store(written_files):
    with open_store(written_files / "ntu60.h5") as store:
        stats = compute_stats(store)
    assert (stats["dataset"], stats["samples"], stats["frames"]) == ("ntu60", 12, 448)
    assert {(b, p): stats["benchmarks"][b][p]["samples"] for b in ("xsub", "xview") for p in ("train", "test")} == {
        ("xsub", "train"): 7, ("xsub", "test"): 5, ("xview", "train"): 8, ("xview", "test"): 4}
    assert stats["benchmarks"]["xview"]["test"]["frames"] == 44 + 33 + 48 + 33  # the camera-1 samples
    length = stats["frame_length"]
    assert (length["min"], length["max"], length["median"]) == (23, 48, 36.5)
    assert length["mean"] == pytest.approx(448 / 12)
    assert sum(length["histogram"]["counts"]) == 12
    assert stats["benchmarks"]["xsub"]["test"]["frame_length"]["min"] == 23
    per_class = {c["action"]: c["samples"] for c in stats["classes"] if c["samples"]}
    assert per_class == {code: 1 for code in ("A007", "A013", "A023", "A026", "A031", "A035", "A037", "A045",
                                              "A046", "A052", "A059", "A060")}
    assert len(stats["classes"]) == 60 and sum(stats["benchmarks"]["xsub"]["train"]["per_class"]) == 7
    assert stats["bodies"] == {"1": 7, "2": 5}
    assert stats["recording"]["camera"] == {"1": 4, "2": 4, "3": 4}
    assert stats["recording"]["setup"] == {"1": 2, "2": 1, "3": 1, "4": 2, "6": 1, "10": 2, "14": 1, "17": 2}
    assert stats["dropped"] == {"total": 2, "by_reason": {"all_bodies_short": 1, "no_body": 1}}
    assert stats["denoising"] == {"frames_dropped": 15, "removed_by_length": 3, "removed_by_spread": 2,
                                  "unassigned": 1, "rows_removed": 11}


def test_stats_of_the_ntu120_and_ucla_stores(written_files):
    with open_store(written_files / "ntu120.h5") as store:
        stats = compute_stats(store)
    assert (stats["samples"], stats["frames"], stats["num_classes"]) == (9, 305, 120)
    assert [stats["benchmarks"]["xset"][p]["samples"] for p in ("train", "test")] == [4, 5]
    assert [stats["benchmarks"]["xsub"][p]["samples"] for p in ("train", "test")] == [5, 4]
    assert stats["dropped"]["by_reason"] == {"no_body": 1}
    assert stats["denoising"] == {"frames_dropped": 9, "removed_by_length": 1, "removed_by_spread": 2,
                                  "unassigned": 1, "rows_removed": 10}
    with open_store(written_files / "ucla.h5") as store:
        stats = compute_stats(store)
    assert (stats["samples"], stats["frames"], stats["denoising"]) == (3, 13, None)
    assert {c["action"]: c["samples"] for c in stats["classes"] if c["samples"]} == {"a01": 1, "a02": 1, "a12": 1}
    assert stats["recording"] == {"subject": {"1": 1, "2": 1, "3": 1}, "view": {"1": 1, "2": 1, "3": 1},
                                  "take": {"0": 1, "1": 1, "2": 1}}
    assert [stats["benchmarks"]["xview"][p]["samples"] for p in ("train", "test")] == [2, 1]


def test_histogram_bins_have_round_widths():
    assert list(histogram_edges(np.array([3, 7]))) == [3, 4, 5, 6, 7, 8]
    edges = histogram_edges(np.array([1, 201]))
    assert (edges[0], edges[1] - edges[0], edges[-1]) == (0, 10, 210)
    assert len(histogram_edges(np.array([32, 300]))) - 1 <= 30


def test_stats_text_report_and_json_keys(written_files):
    result = run("stats", written_files / "ntu60.h5")
    assert result.exit_code == 0, result.output
    for line in ("samples       12   (448 frames)", "cameras       3    1: 4  2: 4  3: 4",
                 "dropped       2   (all_bodies_short 1, no_body 1)",
                 "bodies: 3 removed by length, 2 by spread, 1 unassigned"):
        assert line in result.output
    assert "  xview     train          8        290" in result.output
    result = run("stats", written_files / "ntu60.h5", "--json")
    stats = json.loads(result.output)
    assert list(stats) == ["schema_version", "store", "dataset", "layout", "num_classes", "max_bodies", "samples",
                           "frames", "frame_length", "benchmarks", "classes", "bodies", "recording", "dropped",
                           "denoising"]
    assert list(stats["frame_length"]) == ["min", "max", "mean", "median", "percentiles", "histogram"]
    assert list(stats["frame_length"]["percentiles"]) == ["5", "25", "75", "95"]
    assert list(stats["benchmarks"]["xsub"]["train"]) == ["samples", "frames", "frame_length", "per_class"]
    assert list(stats["classes"][0]) == ["label", "action", "samples"]


def test_stats_plot_writes_a_png(written_files, tmp_path):
    needs_matplotlib()
    result = run("stats", written_files / "ntu120.h5", "--plot", tmp_path / "stats.png")
    assert result.exit_code == 0 and f"wrote {tmp_path / 'stats.png'}" in result.output
    assert (tmp_path / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_named_with_the_install_command(written_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    result = run("stats", written_files / "ntu60.h5", "--plot", tmp_path / "stats.png")
    assert result.exit_code == 1 and f"--plot {MISSING_MATPLOTLIB}" in result.stderr
    assert not (tmp_path / "stats.png").exists()
    result = run("show", written_files / "ntu60.h5", "S001C001P022R001A060", "--out", tmp_path / "s.png")
    assert result.exit_code == 1 and MISSING_MATPLOTLIB in result.stderr
    assert run("stats", written_files / "ntu60.h5").exit_code == 0  # the text report needs no extra


# ---------------------------------------------------------------------------------------------- show

def test_show_draws_a_strip_and_an_animation(written_files, tmp_path):
    needs_matplotlib()
    from PIL import Image
    result = run("show", written_files / "ntu60.h5", "S006C001P018R001A031", "--out", tmp_path / "s.png", "--frames", "5")
    assert result.exit_code == 0 and "(5 frames)" in result.output
    assert Image.open(tmp_path / "s.png").format == "PNG"
    result = run("show", written_files / "ucla.h5", "a12_s03_e02_v03", "--out", tmp_path / "s.gif")
    assert result.exit_code == 0 and "(7 frames)" in result.output
    assert Image.open(tmp_path / "s.gif").n_frames == 7


def test_show_errors(written_files, tmp_path):
    result = run("show", written_files / "ntu60.h5", "S999C001P001R001A001", "--out", tmp_path / "s.png")
    assert result.exit_code == 1 and "no sample named 'S999C001P001R001A001'" in result.stderr
    result = run("show", written_files / "ntu60.h5", "S006C001P018R001A031", "--out", tmp_path / "s.jpg")
    assert result.exit_code == 1 and "give a .png" in result.stderr


@pytest.mark.parametrize("command", ["stats", "verify", "show"])
def test_every_inspect_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output and f"skeldata {command}" in result.output


# ---------------------------------------------------------------------------------- the real NW-UCLA

def test_the_real_nw_ucla_store(nw_ucla_store):
    stats = json.loads(run("stats", nw_ucla_store, "--json").output)
    assert stats["samples"] == 1484
    assert [stats["benchmarks"]["xview"][p]["samples"] for p in ("train", "test")] == [1020, 464]
    assert (stats["frame_length"]["min"], stats["frame_length"]["max"]) == (1, 201)
    result = run("verify", nw_ucla_store)
    assert result.exit_code == 0
    assert "published counts of the full ucla: 1,484 samples, xview 1,020/464" in result.output
