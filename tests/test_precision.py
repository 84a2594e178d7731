"""``--precision`` (fp32, bf16, fp16) and ``--compile``: what each resolves to, training and evaluating with
them on the CPU, exact resume under bf16, and configurations written before ``precision`` existed.

CUDA paths (fp16 with a GradScaler, bf16 on a GPU) are tested at the end and skip without CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from test_engine import _same_tensors, run_cli, tiny, tiny_flags

from cli.train import evaluate as evaluate_command
from cli.train import train as train_command
from csre_models.checkpoint import load_checkpoint
from csre_models.config import ConfigError, TrainConfig, config_from_dict, load_config_file, resolve_config
from csre_models.engine import train
from csre_models.ensemble import load_scores
from csre_models.precision import Precision, cpu_has_native_bf16, resolve_precision

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_the_default_is_fp16_on_cuda_and_fp32_on_the_cpu():
    assert resolve_precision(None, CPU) == Precision("fp32", "cpu")
    assert resolve_precision(None, CUDA) == Precision("fp16", "cuda")
    assert resolve_precision("bf16", CPU).dtype is torch.bfloat16
    assert resolve_precision("fp32", CPU).dtype is None


def test_fp16_on_the_cpu_and_unknown_names_are_refused_with_the_alternative():
    with pytest.raises(ConfigError, match=r"--precision fp16 needs CUDA .* use --precision bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match=r"--precision fp64: choose one of fp32, bf16, fp16"):
        resolve_precision("fp64", CPU)
    # Evaluating a checkpoint trained with fp16 on a GPU, on the CPU: the CPU's default instead.
    assert resolve_precision("fp16", CPU, fall_back=True) == Precision("fp32", "cpu")
    with pytest.raises(ConfigError, match="choose one of"):
        resolve_precision("fp64", CPU, fall_back=True)


def test_only_fp16_scales_the_loss():
    assert not resolve_precision("bf16", CPU).grad_scaler().is_enabled()
    assert not resolve_precision("fp32", CPU).grad_scaler().is_enabled()
    assert Precision("fp16", "cuda").uses_scaler


def test_bf16_autocast_computes_matmuls_in_bfloat16_on_the_cpu():
    a = torch.randn(8, 8)
    with resolve_precision("bf16", CPU).autocast():
        assert (a @ a).dtype is torch.bfloat16
    with resolve_precision("fp32", CPU).autocast():
        assert (a @ a).dtype is torch.float32


def test_cpu_flag_detection_reads_cpuinfo():
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_amp_of_older_configs_and_checkpoints_maps_to_precision(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("amp: false\nepochs: 3\n")
    assert load_config_file(str(path)) == {"precision": "fp32", "epochs": 3}
    assert config_from_dict({"amp": True}).precision is None
    assert config_from_dict({"amp": "false", "precision": "bf16"}).precision == "bf16"
    with pytest.raises(ConfigError, match=r"amp: expected true or false, got 3"):
        config_from_dict({"amp": 3})
    assert resolve_config({"precision": "bf16", "compile": True}).compile is True


def test_a_config_with_fp16_on_the_cpu_is_refused_before_training(ntu_store, tmp_path):
    result = run_cli(train_command, tiny_flags(ntu_store, tmp_path / "run") + ["--precision", "fp16", "--device", "cpu"])
    assert result.exit_code != 0
    assert "--precision fp16 needs CUDA" in result.output
    assert not (tmp_path / "run").exists()


def test_bf16_trains_evaluates_and_resumes_exactly_on_the_cpu(ntu_store, tmp_path):
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    train(tiny(ntu_store, fp32, max_steps=3))
    train(tiny(ntu_store, bf16, max_steps=3, precision="bf16"))
    log = (bf16 / "log.txt").read_text()
    assert "bfloat16 autocast" in log
    a, b = load_checkpoint(fp32 / "last.pt"), load_checkpoint(bf16 / "last.pt")
    assert yaml.safe_load((bf16 / "config.yaml").read_text())["precision"] == "bf16"
    # Same run, another precision: weights close but not equal (bfloat16 keeps 8 bits of mantissa).
    differences = [float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"]
                   if a["model"][k].is_floating_point()]
    assert 0 < max(differences) < 0.05
    # The evaluation of a bf16 run runs in bf16 too, and csre-eval reproduces the run's own scores.
    out = tmp_path / "eval.npz"
    result = run_cli(evaluate_command, ["--checkpoint", bf16 / "last.pt", "--store", ntu_store, "--out", out])
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_scores(out).logits, load_scores(bf16 / "scores_test.npz").logits)
    # --precision overrides the run's: the fp32 run evaluated in bf16 gives close, not equal, logits; fp16 on
    # the CPU is refused, naming the alternative.
    as_bf16 = tmp_path / "fp32-as-bf16.npz"
    result = run_cli(evaluate_command, ["--checkpoint", fp32 / "last.pt", "--store", ntu_store, "--out", as_bf16,
                                        "--precision", "bf16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    in_fp32, in_bf16 = load_scores(fp32 / "scores_test.npz").logits, load_scores(as_bf16).logits
    assert not np.array_equal(in_fp32, in_bf16) and np.allclose(in_fp32, in_bf16, atol=0.1 * np.abs(in_fp32).max())
    result = run_cli(evaluate_command, ["--checkpoint", fp32 / "last.pt", "--store", ntu_store, "--out",
                                        tmp_path / "fp16.npz", "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code != 0 and "--precision fp16 needs CUDA" in result.output
    assert not (tmp_path / "fp16.npz").exists()
    # Resumed in pieces, bit-identical to the uninterrupted bf16 run.
    pieces = tmp_path / "pieces"
    train(tiny(ntu_store, pieces, max_steps=1, precision="bf16"))
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 3})
    c = load_checkpoint(pieces / "last.pt")
    for key in ("model", "optimizer", "rank_states"):
        assert _same_tensors(b[key], c[key]), key


def test_compile_trains_the_same_weights_and_keeps_the_state_dict_keys(ntu_store, tmp_path, monkeypatch):
    """The encoder goes through TorchDynamo and AOTAutograd (the ``aot_eager`` backend: inductor's C++ code
    generation takes minutes per encoder on a CPU; ``bench/bench_throughput.py --compile`` times it)."""
    compiled_modules = []
    original = torch.nn.Module.compile

    def compile_with_aot_eager(module, *args, **kwargs):
        compiled_modules.append(type(module).__name__)
        return original(module, *args, **dict(kwargs, backend="aot_eager"))

    monkeypatch.setattr(torch.nn.Module, "compile", compile_with_aot_eager)
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train(tiny(ntu_store, eager, max_steps=2, csre=False))
    train(tiny(ntu_store, compiled, max_steps=2, csre=False, compile=True))
    assert compiled_modules == ["HCN"] and "encoder compiled" in (compiled / "log.txt").read_text()
    a, b = load_checkpoint(eager / "last.pt")["model"], load_checkpoint(compiled / "last.pt")["model"]
    assert list(a) == list(b)  # no "_orig_mod." prefix: checkpoints of either kind load in the other
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5, rtol=1e-4), key
    logits_a = load_scores(eager / "scores_test.npz").logits
    logits_b = load_scores(compiled / "scores_test.npz").logits
    assert np.allclose(logits_a, logits_b, atol=1e-4, rtol=1e-4)


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch here)")


@cuda_only
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_autocast_trains_and_resumes(ntu_store, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    train(tiny(ntu_store, straight, max_steps=3, device="cuda", precision=precision))
    state = load_checkpoint(straight / "last.pt")
    assert bool(state["scaler"]) == (precision == "fp16")  # the GradScaler's state is saved for fp16 only
    train(tiny(ntu_store, pieces, max_steps=1, device="cuda", precision=precision))
    train(TrainConfig(work_dir=str(pieces)), resume=True, explicit={"max_steps": 3})
    assert load_checkpoint(pieces / "last.pt")["position"] == state["position"]
    for key, value in state["model"].items():
        assert torch.isfinite(value.float()).all(), key
