"""The ``*-stgcn-*`` recipes' training inputs against the reference feeders (2s-AGCN ``feeders/feeder.py``,
HCN-pytorch ``feeder/feeder.py``) run on our ``stgcn-npy`` export, and one training epoch of each recipe.

* our outputs against the digests of the reference outputs in ``fixtures/golden/stgcn_feeders_*.json``,
  made by ``bench/parity_feeders_stgcn.py --agcn <2s-AGCN> --hcn <HCN-pytorch>``, which imports and runs the
  reference feeders sample by sample (run by hand: the checkouts are not part of CI);
* every ``configs/{agcn,hcn}/*-stgcn-*.yaml`` gives its window on the fixture store, and the HCN recipes and
  one 2s-AGCN recipe train an epoch: finite losses, and the input shape the encoder saw.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, PROJECT_ROOT
from csre_models import engine
from csre_models.config import load_config_file, resolve_config
from csre_models.data import SkeletonDataset
from csre_models.data import transforms as T
from csre_models.data.sampling import build_data
from skeldata.build import build
from skeldata.store import open_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
STGCN_CONFIGS = sorted((PROJECT_ROOT / "configs").glob("*/*-stgcn-*.yaml"))
#: The recipes trained for an epoch here: every HCN one (a second each) and one 2s-AGCN one (a 2s-AGCN step
#: on 300 frames takes seconds); every recipe's data is checked by test_each_stgcn_recipe_feeds_its_window.
TRAINED_CONFIGS = [path for path in STGCN_CONFIGS
                   if path.parent.name == "hcn" or path.name == "ntu60-xsub-stgcn-joint.yaml"]


def _training_store(tmp_path_factory, dataset: str) -> Path:
    """The fixture raw files of ``dataset`` built with ``--pipeline stgcn``, once per session."""
    store = tmp_path_factory.getbasetemp() / f"train-{dataset}.h5"
    if not store.exists():
        build([FIXTURES / dataset], store, dataset, jobs=1, pipeline="stgcn")
    return store


def _window(config_path: Path) -> int:
    return 300 if config_path.parent.name == "agcn" else 64


def _bench_module():
    spec = importlib.util.spec_from_file_location("parity_feeders_stgcn", PROJECT_ROOT / "bench" / "parity_feeders_stgcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench_module()


@pytest.fixture(scope="module", params=sorted(BENCHMARKS))
def stgcn_store(request, tmp_path_factory):
    dataset = request.param
    out = tmp_path_factory.mktemp(f"stgcn-feeders-{dataset}") / "store.h5"
    build([FIXTURES / dataset], out, dataset, jobs=1, pipeline="stgcn")
    return dataset, out


def recipe_data(config_path: Path, store: Path, bench_name: str):
    config = resolve_config(load_config_file(str(config_path)),
                            {"store": str(store), "benchmark": bench_name, "val_fraction": 0.0})
    return build_data(config, joint_input=False)


def our_outputs(dataset: SkeletonDataset) -> np.ndarray:
    """Every item of ``dataset``, training draws from numpy's global generator seeded as the bench does."""
    outputs = []
    for position in range(len(dataset)):
        np.random.seed(bench.SEED + position)
        outputs.append(dataset.item(position, bench.LegacyDraws() if dataset.random else None)[0])
    return np.stack(outputs).astype(np.float32)


def test_every_stgcn_recipe_is_covered_by_the_goldens():
    covered = set()
    for dataset in BENCHMARKS:
        covered |= set(json.loads((FIXTURES / "golden" / f"stgcn_feeders_{dataset}.json").read_text())["recipes"])
    assert covered == {bench.config_key(path) for path in STGCN_CONFIGS}
    assert len(STGCN_CONFIGS) == 12          # agcn: 4 benchmarks x joint, bone; hcn: 4 x joint


def test_inputs_equal_the_reference_feeders_outputs(stgcn_store):
    dataset, store = stgcn_store
    golden = json.loads((FIXTURES / "golden" / f"stgcn_feeders_{dataset}.json").read_text())
    assert golden["train_seed"] == bench.SEED
    for bench_name in BENCHMARKS[dataset]:
        for config_path in bench.recipes(dataset, bench_name).values():
            data = recipe_data(config_path, store, bench_name)
            for part, ours in (("train", data.train), ("test", data.test)):
                expected = golden["recipes"][bench.config_key(config_path)][part]
                assert [str(n) for n in ours.names] == expected["names"]
                outputs = our_outputs(ours)
                assert list(outputs.shape) == expected["shape"]
                assert hashlib.sha256(outputs.tobytes()).hexdigest() == expected["sha256"], \
                    f"{bench.config_key(config_path)} {part}"


def test_the_hcn_recipe_takes_hcns_crop_and_it_matters(stgcn_store):
    """On the stgcn store HCN's origin transfer is a no-op and its crop spans the file's frames, not the
    300 frames pre_normalization's repetition fills; CTR-GCN's crop on the same store differs."""
    dataset, store = stgcn_store
    bench_name = BENCHMARKS[dataset][0]
    config = bench.recipes(dataset, bench_name)["hcn-joint"]
    data = recipe_data(config, store, bench_name)
    assert data.train.feeder == data.test.feeder == "hcn" and data.test.window == 64
    assert recipe_data(bench.recipes(dataset, bench_name)["agcn-joint"], store, bench_name).test.feeder == "ctrgcn"
    with open_store(store) as opened:
        raw_frames = opened.column("raw_frames")[data.test.sample_indices]
        assert (raw_frames < 300).all()
        for k in range(data.test.num_samples):
            frames = T.to_feeder_layout(opened.sequence(int(data.test.sample_indices[k])))
            assert np.array_equal(T.first_body_origin(frames), frames)
    ctrgcn = SkeletonDataset(store, bench_name, "test", window=64, feeder="ctrgcn")
    assert any(not np.array_equal(data.test[k][0], ctrgcn[k][0]) for k in range(data.test.num_samples))
    with pytest.raises(ValueError, match="crop=True and an NTU store built with --pipeline stgcn"):
        SkeletonDataset(store, bench_name, "test", crop=False, window=300, feeder="hcn")


def test_hcn_feeder_refuses_an_sgn_store(ntu_store):
    assert SkeletonDataset(ntu_store, "xsub", "test").feeder == "ctrgcn"
    with pytest.raises(ValueError, match="built with --pipeline sgn"):
        SkeletonDataset(ntu_store, "xsub", "test", feeder="hcn")


def test_resize_hcn_is_linear_interpolation_too():
    data = np.random.default_rng(3).normal(size=(3, 37, 25, 2)).astype(np.float32)
    assert np.allclose(T.resize_hcn(data, 64), T.resize(data, 64), atol=1e-6)


# ------------------------------------------------------------------------------ one epoch per recipe

@pytest.mark.parametrize("config_path", STGCN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_stgcn_recipe_feeds_its_window(config_path, tmp_path_factory):
    dataset, bench_name = config_path.name.split("-")[:2]
    config = resolve_config(load_config_file(str(config_path)), {
        "store": str(_training_store(tmp_path_factory, dataset)), "benchmark": bench_name, "device": "cpu"})
    data = build_data(config, joint_input=False)
    for part in (data.train, data.test):
        shapes = {tuple(part[i][0].shape) for i in range(len(part))}
        assert shapes == {(3, _window(config_path), 25, 2)}, (part, shapes)
        assert all(np.isfinite(part[i][0]).all() for i in range(len(part)))


@pytest.mark.parametrize("config_path", TRAINED_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_stgcn_recipe_trains_an_epoch(config_path, tmp_path_factory, monkeypatch, tmp_path):
    dataset, bench_name = config_path.name.split("-")[:2]
    store = _training_store(tmp_path_factory, dataset)
    seen, batches, losses = [], [], []
    step = engine.training_step

    def recording_step(model, batch, *args, **kwargs):
        encoder = engine.encoder_of(model)
        if not getattr(encoder, "_shape_hook", False):
            encoder.register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape)))
            encoder._shape_hook = True
        batches.append(tuple(batch[0].shape))
        outcome = step(model, batch, *args, **kwargs)
        losses.append(outcome[0])
        return outcome

    monkeypatch.setattr(engine, "training_step", recording_step)
    config = resolve_config(load_config_file(str(config_path)), {
        "store": str(store), "benchmark": bench_name, "epochs": 1, "batch_size": 2, "test_batch_size": 4,
        "num_workers": 0, "device": "cpu", "work_dir": str(tmp_path / "run"), "progress": False, "threads": 1,
        })
    result = engine.train(config)
    with open_store(store) as opened:
        train_samples = len(opened.split(bench_name, "train"))
    # batches of 2, the last incomplete one dropped (EpochBatches)
    assert result.epochs_done == 1
    assert len(losses) == train_samples // 2 and all(math.isfinite(loss) for loss in losses)
    window = _window(config_path)
    assert batches == [(2, 3, window, 25, 2)] * len(losses)
    # every input the encoder saw once hooked (training and the end-of-epoch test, in batches of 4)
    assert seen and {shape[1:] for shape in seen} == {(3, window, 25, 2)}, seen
