"""Official weights from the command line (``csre-eval --encoder``, ``csre-train --init-from``) and multi-clip
testing (``csre-eval --clips``, ``test_clips``).

The official reference weights are the shared folders ``../shared/reference/encoders/<setting>`` (as in
test_encoders.py); tests that need them skip naming the missing folder. The others build small HCN state
dicts of their own and run on the NTU-60 fixture store.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, shared_path
from test_encoders import REFERENCE_PARTS, assert_logits_close, features_and_logits, reference_folders
from test_engine import one_line_error, run_cli, tiny

from cli.train import evaluate as evaluate_command
from cli.train import train as train_command
from csre_models import create_encoder
from csre_models import engine
from csre_models.checkpoint import CheckpointError, load_checkpoint
from csre_models.config import load_config_file, resolve_config
from csre_models.csre import encoder_state_dict
from csre_models.data import SkeletonDataset
from csre_models.data import transforms as T
from csre_models.data.transforms import clip_generator
from csre_models.engine import encoder_of, train
from csre_models.ensemble import average_clip_logits, load_scores
from csre_models.weights import REFERENCE, build_reference_encoder, published_recipe, read_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Joint layout of each config data set.
DATASET_LAYOUTS = {"ntu60": "ntu25", "ntu120": "ntu25", "ucla": "ucla20"}


def hcn_state(num_class: int = 60, seed: int = 5) -> dict:
    """A plain HCN state dict (window 16), in the official key layout (which is ours)."""
    torch.manual_seed(seed)
    return create_encoder("hcn", num_class=num_class, window=16).state_dict()


def clip_inputs(store: Path, window: int, clip: int = 0) -> torch.Tensor:
    part = SkeletonDataset(store, "xsub", "test", window=window)
    return torch.stack([torch.from_numpy(part.item(i, clip=clip)[0]) for i in range(len(part))])


# -------------------------------------------------------------------------------- reading official files

@pytest.mark.parametrize("folder", reference_folders())
def test_the_cli_path_gives_the_official_logits(folder: str):
    """What csre-eval --encoder builds (recipe options, key checks, classifier) reproduces the official model."""
    path = shared_path(*REFERENCE_PARTS, folder)
    facts = json.loads((path / "facts.json").read_text())
    build = facts["create_encoder"]
    kwargs = build["kwargs"]
    weights = read_weights(path / "state.pt")
    assert weights.kind == REFERENCE and weights.wrapper is None
    model, arguments, _ = build_reference_encoder(weights, build["name"], kwargs["num_class"], kwargs["layout"],
                                                  kwargs["num_person"], kwargs["window"])
    assert not model.training and arguments["num_class"] == kwargs["num_class"]
    x = torch.load(path / "input.pt")
    with torch.no_grad():
        _, logits = features_and_logits(model, x, facts["call"])
    assert_logits_close(logits, torch.load(path / "logits.pt"), f"{folder} through read_weights")


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "model"])
def test_prefixes_and_wrappers_are_read(tmp_path, wrap):
    state = hcn_state()
    content = {"plain": state, "module": {f"module.{k}": v for k, v in state.items()},
               "state_dict": {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}, "optim_dict": {}},
               "model": {"model": state, "std.conv1.weight": torch.zeros(2)}}[wrap]
    torch.save(content, tmp_path / "w.pt")
    weights = read_weights(tmp_path / "w.pt")
    assert weights.kind == REFERENCE and weights.wrapper == ({"state_dict": "state_dict", "model": "model"}.get(wrap))
    model, _, spine_relative = build_reference_encoder(weights, "hcn", 60, "ntu25", 2, 16)
    assert not spine_relative
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_what_is_not_weights_of_the_encoder_is_named(tmp_path, ntu_store):
    torch.save({"epoch": 1, "args": "--lr 0.1"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"neither a csre_models checkpoint nor a state dict: it is a dict "
                                              r"of 2 entries \(epoch, args\)"):
        read_weights(tmp_path / "other.pt")
    torch.save(hcn_state(), tmp_path / "hcn.pt")
    flags = ["--store", ntu_store, "--benchmark", "xsub", "--out", tmp_path / "s.npz", "--num-workers", "0",
             "--no-progress"]
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn.pt", "--encoder", "agcn",
                                                        *flags]), "csre-eval")
    assert "hcn.pt: not a csre_models checkpoint, and not a state dict of agcn (ntu25, 60 classes)" in message
    assert "keys missing (" in message and "unexpected (conv1.0.weight, " in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn.pt", *flags]), "csre-eval")
    assert "not a csre_models checkpoint but a state dict of" in message and "give --encoder" in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "other.pt", "--encoder", "hcn",
                                                        *flags]), "csre-eval")
    assert "neither a csre_models checkpoint nor a state dict" in message
    torch.save(hcn_state(num_class=120), tmp_path / "hcn120.pt")
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn120.pt", "--encoder", "hcn",
                                                        "--window", "16", *flags]), "csre-eval")
    assert "the weights classify 120 classes; the store has 60" in message


def test_published_recipe_is_the_shipped_configs():
    files = sorted((PROJECT_ROOT / "configs").rglob("*.yaml"))
    assert files
    for path in files:
        config = resolve_config(load_config_file(path))
        spine_relative, options = published_recipe(config.encoder, DATASET_LAYOUTS[config.dataset], config.stream)
        assert (spine_relative, options) == (config.spine_relative, config.encoder_options), path


# --------------------------------------------------------------------------------------------- csre-eval

def test_csre_eval_on_official_weights(ntu_store, tmp_path):
    path = shared_path(*REFERENCE_PARTS, "ctrgcn_ntu60")
    out = tmp_path / "official.npz"
    result = run_cli(evaluate_command, ["--checkpoint", path / "state.pt", "--encoder", "ctrgcn", "--store", ntu_store,
                                        "--benchmark", "xsub", "--out", out, "--num-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "read as ctrgcn (official key layout), xsub, stream joint, window 64, plain feeder" in result.stderr
    scores = load_scores(out)
    model = create_encoder("ctrgcn", num_class=60, window=64).eval()
    model.load_reference_state_dict(torch.load(path / "state.pt"))
    with torch.no_grad():
        expected = model(clip_inputs(ntu_store, 64)).numpy()
    assert scores.logits.shape == (5, 60) and str(scores.extra["stream"]) == "joint"
    np.testing.assert_allclose(scores.logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_csre_eval_forced_reference_weights_and_recipe_flags(ntu_store, tmp_path):
    torch.save({f"module.{k}": v for k, v in hcn_state().items()}, tmp_path / "hcn.pt")
    out = tmp_path / "s.npz"
    flags = ["--store", ntu_store, "--benchmark", "xsub", "--num-workers", "0", "--no-progress", "--window", "16"]
    result = run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn.pt", "--encoder", "hcn", "--reference-weights",
                                        "--stream", "bone", "--spine-relative", "--out", out, *flags])
    assert result.exit_code == 0, result.output
    assert "stream bone, window 16, spine-relative feeder" in result.stderr
    model = create_encoder("hcn", num_class=60, window=16).eval()
    model.load_reference_state_dict(hcn_state())
    part = SkeletonDataset(ntu_store, "xsub", "test", stream="bone", window=16, spine_relative=True)
    with torch.no_grad():
        expected = model(torch.stack([torch.from_numpy(part[i][0]) for i in range(len(part))])).numpy()
    assert np.array_equal(load_scores(out).logits, expected)
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn.pt", "--reference-weights",
                                                        "--out", out, "--overwrite", *flags]), "csre-eval")
    assert "--reference-weights" in message and "give --encoder" in message
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "hcn.pt", "--encoder", "hcn",
                                                        "--part", "val", "--out", out, "--overwrite", *flags]),
                             "csre-eval")
    assert "--part val" in message and "records no held-out samples" in message


# ---------------------------------------------------------------------------------------- multi-clip testing

def test_clips_are_deterministic_and_clip_0_is_the_test_input(ntu_store):
    part = SkeletonDataset(ntu_store, "xsub", "test", window=16)
    differing = 0
    for i in range(len(part)):
        assert np.array_equal(part.item(i, clip=0)[0], part[i][0])
        first, again = part.item(i, clip=1)[0], part.item(i, clip=1)[0]
        assert np.array_equal(first, again)
        # The fixture's sequences have at most 64 valid frames, so every training crop, hence every clip
        # after the first, is the whole sequence (tools.valid_crop_resize's 64-frame floor); the test input
        # is its centre 95 % (the whole of it below 40 frames).
        data = T.to_feeder_layout(part._sequence(i))
        assert np.array_equal(first, T.resize(data[:, :T.valid_frame_count(data)], 16))
        differing += not np.array_equal(first, part[i][0])
    assert differing == 3                   # 44, 47 and 43 valid frames; not 37 or 23
    assert clip_generator(0) is None
    # Longer sequences: each clip its own crop of 50-100 % of the valid frames, the same every time.
    crops = [T.random_crop_bounds(300, clip_generator(k), (0.5, 1.0)) for k in (1, 2, 3, 1)]
    assert crops[0] == crops[3] and len(set(crops)) == 3
    assert all(stop - start >= 150 for start, stop in crops)
    with pytest.raises(ValueError, match="test clips are test-time items"):
        SkeletonDataset(ntu_store, "xsub", "train", train=True, window=16).item(0, np.random.default_rng(0), clip=1)


def test_csre_eval_clips_average_the_clips_softmax(ntu_store, tmp_path):
    torch.save(hcn_state(), tmp_path / "hcn.pt")
    flags = ["--checkpoint", tmp_path / "hcn.pt", "--encoder", "hcn", "--window", "16", "--store", ntu_store,
             "--benchmark", "xsub", "--num-workers", "0", "--no-progress", "--batch-size", "2"]
    result = run_cli(evaluate_command, [*flags, "--clips", "3", "--out", tmp_path / "three.npz",
                                        "--report", tmp_path / "three.json"])
    assert result.exit_code == 0, result.output
    result = run_cli(evaluate_command, [*flags, "--out", tmp_path / "one.npz"])
    assert result.exit_code == 0, result.output

    model = create_encoder("hcn", num_class=60, window=16).eval()
    model.load_reference_state_dict(hcn_state())
    with torch.no_grad():
        per_clip = [model(clip_inputs(ntu_store, 16, clip)).double() for clip in range(3)]
    by_hand = torch.log(torch.stack([torch.softmax(z, dim=1) for z in per_clip]).mean(dim=0)).numpy()
    three = load_scores(tmp_path / "three.npz")
    np.testing.assert_allclose(three.logits, by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(average_clip_logits([z.numpy() for z in per_clip]), by_hand, rtol=1e-6, atol=1e-6)
    assert int(three.extra["clips"]) == 3 and str(three.extra["clip_average"]) == "prob"
    assert json.loads((tmp_path / "three.json").read_text())["clips"] == 3
    one = load_scores(tmp_path / "one.npz")
    assert "clips" not in one.extra       # one clip: the plain logits (batches of 2 here, of 5 above)
    np.testing.assert_allclose(one.logits, per_clip[0].float().numpy(), rtol=1e-5, atol=1e-6)


def test_ucla_clips_draw_frames_without_the_view_change(ucla_store):
    part = SkeletonDataset(ucla_store, "xview", "test")
    plain, clip = part[0][0], part.item(0, clip=1)[0]
    assert clip.shape == plain.shape == (3, 52, 20, 1)
    assert np.array_equal(clip, part.item(0, clip=1)[0]) and not np.array_equal(clip, plain)
    # No view change or scaling: every frame of the clip is a frame of the normalised test sequence.
    values = T.ucla_json_values(part._sequence(0)[:, 0])
    every = T.ucla_positions(values, steps=len(values)).astype(np.float32)      # all frames, in order
    assert all(any(np.array_equal(clip[:, t], every[:, u]) for u in range(every.shape[1])) for t in range(52))


def test_test_clips_of_a_run_and_csre_eval_agree(ntu_store, tmp_path):
    train(tiny(ntu_store, tmp_path, csre=False, max_steps=1, test_clips=2))
    written = load_scores(tmp_path / "scores_test.npz")
    assert int(written.extra["clips"]) == 2
    result = run_cli(evaluate_command, ["--checkpoint", tmp_path / "encoder.pt", "--store", ntu_store, "--out",
                                        tmp_path / "again.npz", "--num-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_scores(tmp_path / "again.npz").logits, written.logits)
    message = one_line_error(run_cli(evaluate_command, ["--checkpoint", tmp_path / "encoder.pt", "--store", ntu_store,
                                                        "--stream", "bone", "--out", tmp_path / "x.npz"]), "csre-eval")
    assert "--stream: " in message and "is a csre_models checkpoint" in message


# ------------------------------------------------------------------------------------------ --init-from

def test_init_from_official_weights(ntu_store, tmp_path, monkeypatch):
    path = shared_path(*REFERENCE_PARTS, "ctrgcn_ntu60")
    captured = []
    original = engine.training_step

    def spy(model, batch, *args, **kwargs):
        captured.append({key: value.detach().clone() for key, value in encoder_of(model).state_dict().items()})
        return original(model, batch, *args, **kwargs)

    monkeypatch.setattr(engine, "training_step", spy)
    work = tmp_path / "run"
    train(tiny(ntu_store, work, encoder="ctrgcn", init_from=str(path / "state.pt"), max_steps=1))
    state = torch.load(path / "state.pt")
    assert len(captured) == 1 and captured[0].keys() == state.keys()
    assert all(torch.equal(captured[0][key], value) for key, value in state.items())
    assert "classifier included" in (work / "log.txt").read_text()
    record = json.loads((work / "env.json").read_text())["init_from"]
    assert (record["kind"], record["classifier"], record["tensors"]) == (REFERENCE, "loaded", len(state))
    assert resolve_config(load_config_file(work / "config.yaml")).init_from == str(path / "state.pt")


def test_init_from_another_class_count_and_from_a_checkpoint(ntu_store, tmp_path, monkeypatch):
    captured = []
    original = engine.training_step

    def spy(model, batch, *args, **kwargs):
        if len(captured) < spy.runs:
            captured.append({key: value.detach().clone() for key, value in encoder_of(model).state_dict().items()})
        return original(model, batch, *args, **kwargs)

    spy.runs = 0
    monkeypatch.setattr(engine, "training_step", spy)

    def run(name, **changes):
        spy.runs += 1
        train(tiny(ntu_store, tmp_path / name, max_steps=1, **changes))
        return captured[-1]

    plain = run("plain")
    source = hcn_state(num_class=120)
    torch.save({"epoch": 9, "state_dict": {f"module.{k}": v for k, v in source.items()}}, tmp_path / "hcn120.pth")
    initialised = run("from-120", init_from=str(tmp_path / "hcn120.pth"))
    head = {"fc8.weight", "fc8.bias"}
    assert all(torch.equal(initialised[key], source[key]) for key in source if key not in head)
    # The classifier keeps the seeded initialisation a run without --init-from starts from.
    assert all(torch.equal(initialised[key], plain[key]) for key in head)
    assert "classifier re-initialised: the weights classify 120 classes, the store 60" in \
        (tmp_path / "from-120" / "log.txt").read_text()
    assert json.loads((tmp_path / "from-120" / "env.json").read_text())["init_from"]["classifier"] == "re-initialised"

    # A csre_models training checkpoint (with its CSRE head): the encoder part, classifier included.
    last = load_checkpoint(tmp_path / "plain" / "last.pt")
    from_last = run("from-last", init_from=str(tmp_path / "plain" / "last.pt"))
    assert all(torch.equal(from_last[key], value) for key, value in encoder_state_dict(last["model"]).items())


def test_init_from_is_refused_with_resume_and_checked_first(ntu_store, tmp_path):
    torch.save(hcn_state(), tmp_path / "hcn.pt")
    run = tmp_path / "run"
    train(tiny(ntu_store, run, max_steps=1))
    message = one_line_error(run_cli(train_command, ["--work-dir", run, "--resume", "--init-from", tmp_path / "hcn.pt"]),
                             "csre-train")
    assert "--init-from starts a new run" in message and "--resume" in message
    fresh = tmp_path / "fresh"
    torch.save({"epoch": 1}, tmp_path / "nothing.pt")
    flags = ["--store", ntu_store, "--benchmark", "xsub", "--encoder", "hcn", "--window", "16", "--work-dir", fresh,
             "--num-workers", "0", "--no-progress"]
    message = one_line_error(run_cli(train_command, [*flags, "--init-from", tmp_path / "nothing.pt"]), "csre-train")
    assert "neither a csre_models checkpoint nor a state dict" in message
    assert not fresh.exists()
    message = one_line_error(run_cli(train_command, [*flags, "--encoder", "agcn", "--init-from", tmp_path / "hcn.pt"]),
                             "csre-train")
    assert "not a state dict of agcn" in message
