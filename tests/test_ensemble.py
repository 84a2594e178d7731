"""Tests of honest ensembles: action names, the classification report, the weight search on validation
scores, presets, and ``csre-ensemble`` / ``csre-eval`` with them."""
from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from csre_models.ensemble import (DEFAULT_GRID, PRESETS, Scores, ScoresError, check_tuning_parts, classification_report,
                                  confusion_matrix, fuse, preset_weights, tune_weights, with_metadata)
from skeldata.actions import action_names, action_names_for_classes


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


def test_tuned_weights_ignore_the_test_labels():
    labels, informative, noise = informative_and_noise(seed=1)
    val = [scores_of(noise, labels, "v"), scores_of(informative, labels, "v")]
    test_labels, test_informative, test_noise = informative_and_noise(seed=2)
    test = [scores_of(test_noise, test_labels, "t"), scores_of(test_informative, test_labels, "t")]
    weights, _ = tune_weights(val)
    permuted = np.random.default_rng(3).permutation(test_labels)
    shuffled = [dataclasses.replace(part, labels=permuted) for part in test]
    check_tuning_parts(val, ["v0", "v1"], shuffled, ["t0", "t1"])
    assert tune_weights(val) == tune_weights(val)          # nothing of the test set enters the search
    assert fuse(test, weights).accuracy(1) != fuse(shuffled, weights).accuracy(1)


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
