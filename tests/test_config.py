"""csre_models.config: precedence of defaults, config files and flags; the shipped recipes; and every check
of prepare_config, each a one-line error of csre-train."""
from __future__ import annotations

import pytest
import torch

from cli.train import train as train_command
from conftest import PROJECT_ROOT
from csre_models import create_encoder, list_encoders
from csre_models.config import default_window, load_config_file, resolve_config
from csre_models.encoders import encoder_card
from test_engine import one_line_error, run_cli, tiny_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_config_precedence_defaults_file_flags(tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr("csre_models.engine.train", lambda config, **kwargs: captured.update(config=config))
    config_file = tmp_path / "run.yaml"
    config_file.write_text("encoder: agcn\nbatch-size: 8\nlr: 4e-4\nepochs: 10\nlr_steps: [3, 6]\n")
    result = run_cli(train_command, ["--config", config_file, "--store", "s.h5", "--lr", "0.5", "--epochs", "65"])
    assert result.exit_code == 0, result.output
    config = captured["config"]
    assert (config.encoder, config.batch_size, config.lr_steps) == ("agcn", 8, [3, 6])     # from the file
    assert (config.lr, config.epochs, config.store) == (0.5, 65, "s.h5")      # flags, even at a default value
    assert (config.weight_decay, config.stream) == (4e-4, "joint")            # defaults
    assert resolve_config({"lr": "4e-4"}).lr == 4e-4        # YAML 1.1 reads 4e-4 as text; it is coerced

    config_file.write_text("batch_size: eight\n")
    assert "batch_size: expected an integer, got 'eight'" in one_line_error(
        run_cli(train_command, ["--config", config_file]), "csre-train")
    config_file.write_text("learning_rate: 0.1\n")
    assert "unknown key 'learning_rate'" in one_line_error(run_cli(train_command, ["--config", config_file]),
                                                           "csre-train")


#: What a config's data set means for its encoder: classes, joint layout and persons.
CONFIG_DATASETS = {"ntu60": (60, "ntu25", 2), "ntu120": (120, "ntu25", 2), "ucla": (10, "ucla20", 1)}


def test_shipped_configs_load_and_match_their_names():
    files = sorted((PROJECT_ROOT / "configs").rglob("*.yaml"))
    assert len(files) >= 92
    for path in files:
        config = resolve_config(load_config_file(path))
        parts = path.stem.split("-")
        dataset, benchmark, stream = parts[0], parts[1], parts[-1]
        # <dataset>-<benchmark>-stgcn-<stream>: recipes for a store built with --pipeline stgcn.
        stgcn = parts[2:-1] == ["stgcn"]
        assert len(parts) == (4 if stgcn else 3) and config.pipeline == ("stgcn" if stgcn else None), path
        assert (config.encoder, config.dataset, config.benchmark, config.stream) == (
            path.parent.name, dataset, benchmark, stream), path
        assert config.encoder in list_encoders(), path
        own_agcn = stgcn and config.encoder == "agcn"   # 2s-AGCN's own recipe: all 300 frames, no augmentation
        if own_agcn:
            assert (config.window, config.crop, config.random_rot) == (300, False, False), path
            assert (config.epochs, config.lr_steps, config.weight_decay) == (50, [30, 40], 1e-4), path
        else:
            assert config.crop and config.window == (52 if dataset == "ucla" else 64), path
        assert config.store is None, path
        # Hyperformer and BlockGCN were published with the spine-relative feeder.
        assert config.spine_relative == (config.encoder in ("hyperformer", "blockgcn")), path
        # HCN's recipe: Adam, clipping, per-epoch decay, no rotation; the GCNs': SGD, CTR-GCN's rotation.
        hcn = config.encoder == "hcn"
        assert (config.optimizer, config.random_rot) == (("adam", False) if hcn else ("sgd", not own_agcn)), path
        assert (config.clip_grad_norm, config.lr_epoch_decay) == ((32.0, 0.99) if hcn else (None, 1.0)), path
        classes, layout, persons = CONFIG_DATASETS[dataset]
        # The encoder's card says the same (what defaults, the dataset and official weights go by).
        card = encoder_card(config.encoder)
        assert path in card.recipes() and config.spine_relative == card.spine_relative(layout), path
        if stgcn:
            assert (config.window, config.crop) == (card.stgcn_window, card.stgcn_feeder != "whole"), path
        else:
            assert config.window == card.window(layout) == default_window(layout, config.encoder), path
        create_encoder(config.encoder, num_class=classes, layout=layout, num_person=persons, window=config.window,
                       **config.encoder_options)


def test_a_config_of_another_data_set_is_refused(ucla_store, tmp_path):
    """The benchmark name alone cannot tell: NTU-60 and NW-UCLA both have an xview benchmark."""
    config = PROJECT_ROOT / "configs" / "ctrgcn" / "ntu60-xview-joint.yaml"
    message = one_line_error(run_cli(train_command, ["--config", config, "--store", ucla_store, "--work-dir", tmp_path,
                                                     "--epochs", "1"]), "csre-train")
    assert f"the configuration is for ntu60 but {ucla_store} holds ucla (ucla20, 10 classes)" in message
    assert not (tmp_path / "last.pt").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--encoder", "resnet"], "unknown encoder 'resnet'; known: agcn, "),
    (["--benchmark", "xset"], "--benchmark xset: not in this store; "),
    (["--stream", "velocity"], "unknown stream 'velocity'; known: joint, bone, joint_motion, bone_motion"),
    (["--device", "cuda"], "CUDA is not available here"),
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; known: sgd, adam"),
    (["--clip-grad-norm", "0"], "--clip-grad-norm must be positive, got 0.0"),
])
def test_errors_are_one_line(ntu_store, tmp_path, flags, expected):
    if flags[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    message = one_line_error(run_cli(train_command, tiny_flags(ntu_store, tmp_path) + flags), "csre-train")
    assert expected in message
    if flags[0] == "--benchmark":
        assert message.endswith("(ntu60) has xsub, xview")


def test_random_rotation_is_refused_on_ucla(ucla_store, tmp_path):
    message = one_line_error(run_cli(train_command, ["--store", ucla_store, "--no-random-rot", "--work-dir", tmp_path]),
                             "csre-train")
    assert "--no-random-rot: the random rotation is the NTU feeder's" in message
