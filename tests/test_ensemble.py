"""Tests of honest ensembles: action names, the classification report, the weight search on validation
scores, presets, and ``csre-ensemble`` / ``csre-eval`` with them.

Score files are made by hand where the numbers matter; one tiny training run with validation (the NTU-60
fixture store, HCN, as in ``test_engine``) supplies real ``scores_test.npz`` / ``scores_val.npz`` files.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from test_engine import one_line_error, run_cli, tiny

from cli.train import ensemble as ensemble_command
from cli.train import evaluate as evaluate_command
from csre_models.checkpoint import load_checkpoint, save_checkpoint
from csre_models.engine import train
from csre_models.ensemble import (DEFAULT_GRID, PRESETS, Scores, ScoresError, check_tuning_parts, classification_report,
                                  confusion_matrix, fuse, load_scores, metadata, preset_weights, save_scores,
                                  tune_weights, with_metadata)
from skeldata.actions import action_names, action_names_for_classes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------- action names

def test_action_names_of_each_data_set():
    ntu60, ntu120, ucla = action_names("ntu60"), action_names("ntu120"), action_names("ucla")
    assert (len(ntu60), len(ntu120), len(ucla)) == (60, 120, 10)
    assert ntu120[:60] == ntu60 and len(set(ntu120)) == 120
    assert (ntu60[0], ntu60[1], ntu60[59]) == ("drink water", "eat meal/snack", "walking apart from each other")
    assert (ntu120[60], ntu120[119]) == ("put on headphone", "finger-guessing game (playing rock-paper-scissors)")
    assert ucla == ("pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
                    "stand up", "donning", "doffing", "throw", "carry")
    assert action_names_for_classes(60) == ntu60 and action_names_for_classes(10) == ucla
    assert action_names_for_classes(3) == ("class 0", "class 1", "class 2")
    with pytest.raises(KeyError, match="unknown data set 'kinetics'"):
        action_names("kinetics")


# ------------------------------------------------------------------------------- hand-made scores

def scores_of(logits, labels, prefix: str = "s", **recorded) -> Scores:
    """Scores of the given logits and labels, samples named ``<prefix>0``, ``<prefix>1``, ..."""
    logits = np.asarray(logits, dtype=np.float32)
    names = np.array([f"{prefix}{i}" for i in range(len(logits))])
    return with_metadata(Scores(names, logits, np.asarray(labels, dtype=np.int64)), **recorded)


def informative_and_noise(samples: int = 60, classes: int = 5, seed: int = 0):
    """An informative part (the label's logit raised, plus noise) and a part of pure noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, samples)
    informative = rng.normal(size=(samples, classes))
    informative[np.arange(samples), labels] += 1.5
    return labels, informative, rng.normal(size=(samples, classes)) * 3


def brute_force_weights(parts, grid):
    """The documented rule, one candidate at a time through :func:`fuse`."""
    best = None
    for weights in itertools.product(grid, repeat=len(parts)):
        if max(weights) != max(grid):
            continue
        fused = fuse(parts, weights).logits.astype(np.float64)
        labels = parts[0].labels
        top1 = float((fused.argmax(axis=1) == labels).mean())
        log_softmax = fused - fused.max(axis=1, keepdims=True)
        log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
        entropy = float(-log_softmax[np.arange(len(labels)), labels].mean())
        key = (-top1, entropy, weights)
        if best is None or key < best[0]:
            best = (key, weights)
    return best[1]


def test_confusion_matrix_and_mean_class_accuracy_by_hand():
    # labels 0 0 0 1 2 2; predictions (argmax) 0 0 1 1 0 2; class 3 has no sample.
    logits = [[5, 1, 0, 0], [3, 2, 0, 0], [0, 4, 1, 0], [0, 9, 0, 0], [7, 0, 6, 0], [0, 0, 2, 1]]
    scores = scores_of(logits, [0, 0, 0, 1, 2, 2])
    expected = np.array([[2, 1, 0, 0],
                         [0, 1, 0, 0],
                         [1, 0, 1, 0],
                         [0, 0, 0, 0]])
    matrix = confusion_matrix(scores.logits, scores.labels, 4)
    assert matrix.dtype == np.int64 and np.array_equal(matrix, expected)
    report = classification_report(scores, class_names=["a", "b", "c", "d"])
    assert report["num_samples"] == 6 and report["top1"] == pytest.approx(4 / 6)
    # recall 2/3, 1, 1/2 over the three classes present; class 3 does not count
    assert report["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert report["per_class"] == [
        {"label": 0, "name": "a", "accuracy": pytest.approx(2 / 3), "count": 3},
        {"label": 1, "name": "b", "accuracy": 1.0, "count": 1},
        {"label": 2, "name": "c", "accuracy": 0.5, "count": 2},
        {"label": 3, "name": "d", "accuracy": None, "count": 0}]
    assert report["top5"] == 1.0
    json.dumps(report, allow_nan=False)
    # Without names: the recorded data set's action names, else names guessed from the class count.
    assert classification_report(scores)["per_class"][0]["name"] == "class 0"
    ucla = scores_of(np.eye(10)[:3], [0, 1, 2], dataset="ucla")
    assert [c["name"] for c in classification_report(ucla)["per_class"][:2]] == ["pick up with one hand",
                                                                                  "pick up with two hands"]


def test_tune_weights_finds_the_informative_part():
    labels, informative, noise = informative_and_noise()
    parts = [scores_of(noise, labels), scores_of(informative, labels)]
    weights, info = tune_weights(parts)
    assert weights[1] == 1.0 and weights[0] <= 0.2
    assert info["candidates"] == 21 and info["grid"] == [round(0.1 * k, 1) for k in range(11)]
    assert info["val_top1"] == pytest.approx(fuse(parts, weights).accuracy(1))
    assert info["val_top1"] > parts[0].accuracy(1) + 0.3
    assert set(info) == {"grid", "candidates", "val_top1", "val_cross_entropy", "ties_at_best_top1"}


def test_tune_weights_follows_the_documented_rule():
    # Three parts, few samples (many ties at the best top-1), a coarse grid: compare with one-by-one fusion.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, 25)
    parts = [scores_of(np.round(rng.normal(size=(25, 6)) * 2) / 2 + np.eye(6)[labels] * k, labels) for k in range(3)]
    grid = (0.0, 0.25, 0.5, 1.0)
    weights, info = tune_weights(parts, grid)
    assert weights == brute_force_weights(parts, grid)
    assert info["candidates"] == 4 ** 3 - 3 ** 3
    # Small blocks of fused logits give the same answer.
    assert tune_weights(parts, grid, chunk_bytes=64) == (weights, info)


def test_tie_break_is_deterministic():
    # A part of constant logits changes nothing: with the informative part at weight 1, every weight of the
    # constant part ties on top-1 and on cross-entropy, and the lexicographically smallest vector wins.
    labels = np.array([0, 1, 2, 1])
    informative = np.eye(3)[labels] * 4
    parts = [scores_of(informative, labels), scores_of(np.zeros((4, 3)), labels)]
    weights, info = tune_weights(parts)
    assert weights == (1.0, 0.0)
    assert info["val_top1"] == 1.0 and info["ties_at_best_top1"] == 20     # every vector but (0, 1)
    assert tune_weights(parts) == (weights, info)
    # Two identical parts: (a, 1) and (1, a) fuse to the same logits; the smaller, (a, 1), is chosen.
    same = [scores_of(informative, labels), scores_of(informative, labels)]
    weights, _ = tune_weights(same)
    assert weights[1] == 1.0 and weights[0] <= 1.0 and weights == brute_force_weights(same, DEFAULT_GRID)


def test_tuning_files_must_not_be_the_test_files():
    labels, informative, noise = informative_and_noise()
    test = [scores_of(noise, labels, stream="joint"), scores_of(informative, labels, stream="bone")]
    with pytest.raises(ScoresError, match="share 60 of 60 sample names"):
        check_tuning_parts(test, ["v0", "v1"], test, ["t0", "t1"])
    val = [scores_of(noise, labels, "v", stream="bone"), scores_of(informative, labels, "v", stream="joint")]
    with pytest.raises(ScoresError, match="file 1: v0 is stream bone, t0 is stream joint"):
        check_tuning_parts(val, ["v0", "v1"], test, ["t0", "t1"])
    with pytest.raises(ScoresError, match="gives 1 score files for 2 test files"):
        check_tuning_parts(val[:1], ["v0"], test, ["t0", "t1"])
    marked = [scores_of(noise, labels, "v", part="test")] * 2
    with pytest.raises(ScoresError, match="v0 holds test-part scores"):
        check_tuning_parts(marked, ["v0", "v1"], test, ["t0", "t1"])


def test_presets_follow_the_recorded_streams():
    weights, note = preset_weights("csre-ntu", ["bone_motion", "joint", "joint_motion", "bone"])
    assert weights == (0.2, 0.6, 0.35, 0.7) and note is None
    weights, note = preset_weights("hyperformer-ucla", [None] * 4)
    assert weights == (0.4, 0.4, 0.3, 0.2) and "in the order given" in note
    assert preset_weights("pyskl-2s", ["bone", "joint"]) == ((1.0, 1.0), None)
    assert PRESETS["pyskl-4s"].weights == (2, 2, 1, 1) and PRESETS["agcn-2s"].streams == ("joint", "bone")
    assert "assigned but never used" in PRESETS["csre-ucla"].source
    with pytest.raises(ScoresError, match="unknown preset 'best'; known: csre-ntu, "):
        preset_weights("best", ["joint"])
    with pytest.raises(ScoresError, match="weighs the streams joint, bone, joint_motion, bone_motion"):
        preset_weights("csre-ntu", ["joint", "bone"])
    with pytest.raises(ScoresError, match="file 2 is stream joint where the preset's order has bone"):
        preset_weights("pyskl-2s", [None, "joint"])


# ------------------------------------------------------------------------------------ csre-ensemble

def write_streams(folder: Path, prefix: str, labels, logits_per_stream, streams, part: str):
    """One score file per stream, ``<folder>/<prefix>-<stream>.npz``, recording stream, data set and part."""
    paths = []
    for stream, logits in zip(streams, logits_per_stream):
        path = folder / f"{prefix}-{stream}.npz"
        save_scores(path, scores_of(logits, labels, prefix, stream=stream, dataset="ntu60", part=part))
        paths.append(path)
    return paths


def val_and_test(folder: Path, test_labels=None):
    """Validation and test files of two streams: joint is noise, bone is informative."""
    labels, informative, noise = informative_and_noise(seed=1)
    val = write_streams(folder, "val", labels, [noise, informative], ["joint", "bone"], "val")
    labels, informative, noise = informative_and_noise(seed=2)
    test = write_streams(folder, "test", labels if test_labels is None else test_labels(labels),
                         [noise, informative], ["joint", "bone"], "test")
    return val, test


def test_weights_tuned_on_validation_ignore_the_test_labels(tmp_path):
    val, test = val_and_test(tmp_path)
    permuted = tmp_path / "permuted"
    permuted.mkdir()
    _, shuffled = val_and_test(permuted, lambda labels: np.random.default_rng(3).permutation(labels))
    fused = []
    for files, out in ((test, tmp_path / "fused.npz"), (shuffled, tmp_path / "shuffled.npz")):
        result = run_cli(ensemble_command, [*files, "--tune-on", *val, "--out", out, "--report", out.with_suffix(".json")])
        assert result.exit_code == 0, result.output
        assert "weights tuned on 2 validation files (60 samples, 21 candidates)" in result.stdout
        fused.append(load_scores(out))
    weights = fused[0].extra["weights"]
    assert np.array_equal(weights, fused[1].extra["weights"]) and weights[1] == 1.0 and weights[0] <= 0.2
    assert fused[0].accuracy(1) != fused[1].accuracy(1)
    assert metadata(fused[0], "tuned_on") == "val" and list(fused[0].extra["streams"]) == ["joint", "bone"]
    assert list(fused[0].extra["sources"]) == [str(path) for path in test]
    report = json.loads((tmp_path / "fused.json").read_text())
    assert report["tuned_on"] == "val" and report["weights"] == weights.tolist()
    assert report["top1"] == pytest.approx(fused[0].accuracy(1)) and len(report["per_class"]) == 5
    assert report["tuning"]["sources"] == [str(path) for path in val] and report["tuning"]["candidates"] == 21


def test_tuning_on_the_test_files_is_refused_or_marked(tmp_path):
    val, test = val_and_test(tmp_path)
    unmarked = tmp_path / "unmarked.npz"                # test scores that do not say they are test scores
    save_scores(unmarked, dataclasses.replace(load_scores(test[0]), extra={}))
    message = one_line_error(run_cli(ensemble_command, [*test, "--tune-on", unmarked, val[1], "--out",
                                                        tmp_path / "x.npz"]), "csre-ensemble")
    assert f"{unmarked} and {test[0]} share 60 of 60 sample names" in message
    message = one_line_error(run_cli(ensemble_command, [*test, "--tune-on", *test, "--out", tmp_path / "x.npz"]),
                             "csre-ensemble")
    assert f"{test[0]} holds test-part scores" in message

    out = tmp_path / "optimistic.npz"
    result = run_cli(ensemble_command, [*test, "--tune-on-test", "--out", out, "--report", tmp_path / "r.json"])
    assert result.exit_code == 0, result.output
    assert "WARNING: --tune-on-test chooses the weights on the test labels" in result.stderr
    assert "optimistic" in result.stdout
    assert metadata(load_scores(out), "tuned_on") == "test"
    assert json.loads((tmp_path / "r.json").read_text())["tuned_on"] == "test"


def test_preset_weights_go_to_their_streams(tmp_path):
    labels, informative, noise = informative_and_noise()
    streams = ["bone_motion", "joint", "bone", "joint_motion"]           # not the preset's order
    files = write_streams(tmp_path, "test", labels, [noise, informative, noise, informative], streams, "test")
    out = tmp_path / "fused.npz"
    result = run_cli(ensemble_command, [*files, "--preset", "csre-ntu", "--out", out, "--report", tmp_path / "r.json"])
    assert result.exit_code == 0, result.output
    fused = load_scores(out)
    assert fused.extra["weights"].tolist() == [0.2, 0.6, 0.7, 0.35]
    assert metadata(fused, "tuned_on") == "preset:csre-ntu"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["preset"]["name"] == "csre-ntu" and "never used" in report["preset"]["source"]
    bare = []
    for k, path in enumerate(files):                                  # files that record no stream
        bare.append(tmp_path / f"bare{k}.npz")
        save_scores(bare[-1], dataclasses.replace(load_scores(path), extra={}))
    result = run_cli(ensemble_command, [*bare, "--preset", "csre-ntu", "--out", out])
    assert result.exit_code == 1 and f"{out} exists (file); give --overwrite to replace it" in result.stderr
    result = run_cli(ensemble_command, [*bare, "--preset", "csre-ntu", "--out", out, "--overwrite"])
    assert result.exit_code == 0 and "applied in the order given" in result.stderr
    assert load_scores(out).extra["weights"].tolist() == [0.6, 0.7, 0.35, 0.2]


@pytest.mark.parametrize("flags, expected", [
    (["--weights", "1,1", "--preset", "pyskl-2s"], "--weights and --preset are mutually exclusive"),
    (["--preset", "pyskl-2s", "--tune-on-test"], "--preset and --tune-on-test are mutually exclusive"),
    (["--tune-on", "VAL", "--tune-on-test"], "--tune-on and --tune-on-test are mutually exclusive"),
    (["--preset", "hyperformer"], "unknown preset 'hyperformer'; known: "),
])
def test_ensemble_errors_are_one_line(tmp_path, flags, expected):
    val, test = val_and_test(tmp_path)
    flags = [str(val[0]) if flag == "VAL" else flag for flag in flags]
    message = one_line_error(run_cli(ensemble_command, [*test, *flags, "--out", tmp_path / "x.npz"]), "csre-ensemble")
    assert expected in message


def test_confusion_image(tmp_path):
    pytest.importorskip("matplotlib", reason="the confusion image needs the optional extra: pip install '.[plot]'")
    val, test = val_and_test(tmp_path)
    result = run_cli(ensemble_command, [*test, "--tune-on", *val, "--out", tmp_path / "f.npz", "--confusion",
                                        tmp_path / "cm.png"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for classes in (10, 120):                                        # NW-UCLA and NTU120 by name
        labels = np.arange(classes * 2) % classes
        path = tmp_path / f"c{classes}.npz"
        save_scores(path, scores_of(np.eye(classes)[labels[::-1]], labels, dataset="ucla" if classes == 10 else None))
        result = run_cli(ensemble_command, [path, "--out", tmp_path / f"f{classes}.npz", "--confusion", tmp_path / f"c{classes}.png"])
        assert result.exit_code == 0, result.output


def test_missing_matplotlib_is_one_line(tmp_path, monkeypatch):
    val, test = val_and_test(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # `import matplotlib` now raises ImportError
    message = one_line_error(run_cli(ensemble_command, [*test, "--out", tmp_path / "f.npz", "--confusion",
                                                        tmp_path / "cm.png"]), "csre-ensemble")
    assert "--confusion needs matplotlib: pip install" in message


def test_help_shows_the_new_flags_in_examples():
    for command, flags in ((ensemble_command, ["--tune-on", "--tune-on-test", "--preset", "--report", "--confusion"]),
                           (evaluate_command, ["--part val", "--report", "--confusion"])):
        result = run_cli(command, ["--help"])
        assert result.exit_code == 0
        example = result.output.split("Example:")[1]
        assert all(flag in example for flag in flags), example


# ------------------------------------------------------------------------------ csre-eval --part val

@pytest.fixture(scope="module")
def val_run(ntu_store, tmp_path_factory) -> Path:
    """HCN + CSRE with 30 % of the 7 training samples held out (2 of them), two epochs."""
    work_dir = tmp_path_factory.mktemp("runs") / "hcn-val"
    train(tiny(ntu_store, work_dir, val_fraction=0.3))
    return work_dir


def test_training_scores_record_what_they_are(val_run):
    for part in ("test", "val"):
        scores = load_scores(val_run / f"scores_{part}.npz")
        assert [metadata(scores, key) for key in ("stream", "dataset", "part")] == ["joint", "ntu60", part]
        assert scores.logits.dtype == np.float32 and set(scores.extra) == {"stream", "dataset", "part"}


def test_eval_part_val_reproduces_the_runs_validation_scores(val_run, ntu_store, tmp_path):
    written = load_scores(val_run / "scores_val.npz")
    out = tmp_path / "val.npz"
    result = run_cli(evaluate_command, ["--checkpoint", val_run / "encoder.pt", "--store", ntu_store, "--part", "val",
                                        "--out", out, "--report", tmp_path / "val.json", "--num-workers", "0",
                                        "--no-progress"])
    assert result.exit_code == 0, result.output
    evaluated = load_scores(out)
    assert len(evaluated.names) == 2
    for key in ("names", "logits", "labels"):
        assert np.array_equal(getattr(evaluated, key), getattr(written, key)), key
    assert metadata(evaluated, "part") == "val" and metadata(evaluated, "stream") == "joint"
    report = json.loads((tmp_path / "val.json").read_text())
    assert report["part"] == "val" and report["num_samples"] == 2 and len(report["per_class"]) == 60
    assert report["per_class"][0]["name"] == "drink water"
    # The run's own validation and test files fuse with weights tuned on the former.
    result = run_cli(ensemble_command, [val_run / "scores_test.npz", "--tune-on", out, "--out", tmp_path / "f.npz"])
    assert result.exit_code == 0, result.output


def test_eval_part_val_needs_a_run_with_validation(val_run, ntu_store, tmp_path):
    payload = load_checkpoint(val_run / "encoder.pt")
    payload["config"]["val_fraction"] = 0.0
    save_checkpoint(tmp_path / "plain.pt", payload.pop("kind"), {k: v for k, v in payload.items() if k != "format"})
    flags = ["--store", ntu_store, "--part", "val", "--out", tmp_path / "x.npz", "--num-workers", "0"]
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "plain.pt", *flags]), "csre-eval")
    assert "was trained without --val-fraction" in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", val_run / "encoder.pt", *flags,
                                                        "--benchmark", "xview"]), "csre-eval")
    assert "come from the training part of xsub, not xview" in message


def test_ensemble_fuses_with_recorded_weights(val_run, tmp_path):
    joint = load_scores(val_run / "scores_test.npz")
    # A second file that is not a multiple of the first: its classes shifted by one, so a fusion that read only
    # the first file (or dropped the weights) gives other logits and another top-1.
    other = dataclasses.replace(joint, logits=np.roll(joint.logits, 1, axis=1) * 4)
    save_scores(tmp_path / "b.npz", other)
    out = tmp_path / "fused.npz"
    result = run_cli(ensemble_command, [val_run / "scores_test.npz", tmp_path / "b.npz", "--weights", "0.5,0.25",
                                        "--out", out])
    assert result.exit_code == 0, result.output
    expected = Scores(joint.names, (0.5 * joint.logits.astype(np.float64) + 0.25 * other.logits.astype(np.float64))
                      .astype(np.float32), joint.labels)
    assert f"fused 2 files, 5 samples: top-1 {expected.accuracy(1):.4f}" in result.stdout
    fused = load_scores(out)
    assert np.allclose(fused.logits, expected.logits) and fused.extra["weights"].tolist() == [0.5, 0.25]
    assert not np.allclose(fused.logits, joint.logits) and not np.allclose(fused.logits, 0.5 * joint.logits)
    assert list(fused.extra["sources"]) == [str(val_run / "scores_test.npz"), str(tmp_path / "b.npz")]
    assert metadata(fused, "tuned_on") == "fixed" and metadata(fused, "part") == "test"

    reordered = dataclasses.replace(joint, names=joint.names[::-1], logits=joint.logits[::-1],
                                    labels=joint.labels[::-1])
    save_scores(tmp_path / "reordered.npz", reordered)
    message = one_line_error(run_cli(ensemble_command, [out, tmp_path / "reordered.npz", "--out", tmp_path / "x.npz"]),
                             "csre-ensemble")
    assert "other samples or another order" in message
    message = one_line_error(run_cli(ensemble_command, [out, tmp_path / "b.npz", "--weights", "1", "--out", tmp_path / "y.npz"]),
                             "csre-ensemble")
    assert "1 weights for 2 score files" in message
