"""csre_models.data: the store-backed dataset and the reference feeders' transforms.

* equivalence with the published feeders' test-time outputs (``../shared/reference``; skipped without it);
* the transforms and the dataset on the bundled NTU fixtures and a small synthetic NW-UCLA set;
* DataLoader workers under fork and spawn.
"""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import FIXTURES, shared_path
from csre_models.data import SkeletonDataset
from csre_models.data import transforms as T
from skeldata.build import build
from skeldata.layouts import NTU25

STREAMS = T.STREAMS
VARIANTS = {"ctrgcn": False, "csre": True}


# ------------------------------------------------------------------------------------------ stores

@pytest.fixture(scope="module")
def fixture_stores(tmp_path_factory):
    """The bundled NTU60 and NTU120 fixture files as stores."""
    out = tmp_path_factory.mktemp("fixture_stores")
    for dataset in ("ntu60", "ntu120"):
        build([FIXTURES / dataset], out / f"{dataset}.h5", dataset)
    return {dataset: out / f"{dataset}.h5" for dataset in ("ntu60", "ntu120")}


def write_ucla_files(folder, names, rng):
    """Synthetic ``all_sqe`` files: a wandering skeleton with 6-digit coordinates, 1 to 40 frames."""
    folder.mkdir()
    for name in names:
        frames = int(rng.integers(1, 41))
        joints = rng.normal(0, 0.3, (1, 20, 3)) + np.cumsum(rng.normal(0, 0.02, (frames, 1, 3)), axis=0)
        (folder / f"{name}.json").write_text(json.dumps({"file_name": name, "skeletons": np.round(joints, 5).tolist()}))


@pytest.fixture(scope="module")
def synthetic_ucla_store(tmp_path_factory):
    """A synthetic NW-UCLA store: 6 training sequences (views 1, 2), 3 test sequences (view 3)."""
    out = tmp_path_factory.mktemp("ucla")
    names = [f"a{a:02d}_s01_e00_v{v:02d}" for v in (1, 2, 3) for a in ((1, 2, 12) if v < 3 else (3, 4, 5))]
    write_ucla_files(out / "all_sqe", names, np.random.default_rng(7))
    build([out / "all_sqe"], out / "ucla.h5", "ucla")
    return out / "ucla.h5"


# ------------------------------------------------------------------- equivalence with the feeders

@pytest.fixture(scope="module")
def reference():
    return np.load(shared_path("reference", "feeders_test_outputs.npz"))


@pytest.fixture(scope="module")
def shared_stores(tmp_path_factory, reference):
    """Stores of the feeders file's data: the setA-ntu60 parity set, and the 64 NW-UCLA files it names."""
    out = tmp_path_factory.mktemp("shared_stores")
    with tarfile.open(shared_path("parity", "ntu", "setA-ntu60", "raw.tar.gz")) as archive:
        archive.extractall(out / "ntu", filter="data")
    build([out / "ntu"], out / "ntu60.h5", "ntu60")
    all_sqe = shared_path("data", "nw-ucla", "all_sqe")
    (out / "ucla").mkdir()
    for name in reference["ctrgcn__ucla_val_first64__names"]:
        (out / "ucla" / f"{name}.json").symlink_to(all_sqe / f"{name}.json")
    build([out / "ucla"], out / "ucla.h5", "ucla")
    return {"ntu60_xsub_test": (out / "ntu60.h5", "xsub"), "ucla_val_first64": (out / "ucla.h5", "xview")}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("data_set", ["ntu60_xsub_test", "ucla_val_first64"])
def test_test_inputs_equal_the_published_feeders(reference, shared_stores, variant, stream, data_set):
    path, benchmark = shared_stores[data_set]
    ds = SkeletonDataset(path, benchmark=benchmark, part="test", stream=stream, train=False,
                         spine_relative=VARIANTS[variant])
    expected = reference[f"{variant}__{data_set}__{stream}"]
    if data_set.startswith("ucla"):       # the published NW-UCLA list has its own order: match by name
        names = ds.names
        positions = [names.index(name) for name in reference[f"{variant}__{data_set}__names"]]
    else:
        positions = range(len(ds))
    ours = np.stack([ds[i][0] for i in positions])
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    assert np.allclose(ours, expected, rtol=1e-5, atol=1e-6), np.abs(ours - expected).max()


# ------------------------------------------------------------------------------------- transforms

def test_crop_bounds():
    assert T.centre_crop_bounds(100, 0.95) == (2, 98)
    assert T.centre_crop_bounds(30, 0.95) == (0, 30)
    rng = np.random.default_rng(0)
    for valid in (1, 40, 64, 65, 300):
        bounds = np.array([T.random_crop_bounds(valid, rng) for _ in range(300)])
        lengths = bounds[:, 1] - bounds[:, 0]
        assert (bounds[:, 0] >= 0).all() and (bounds[:, 1] <= valid).all()
        assert (lengths >= min(valid, T.MIN_CROP_FRAMES)).all() and (lengths <= valid).all()
    assert len(set(map(tuple, bounds))) > 50          # 300 frames: many different crops
    assert lengths.min() < 170 and lengths.max() > 280
    with pytest.raises(ValueError, match="no frame"):
        T.centre_crop_bounds(0)


def test_resize_is_linear_interpolation_in_time():
    ramp = np.broadcast_to(np.arange(10, dtype=np.float32)[None, :, None, None], (3, 10, 25, 2))
    resized = T.resize(ramp, 20)
    assert resized.shape == (3, 20, 25, 2) and resized.dtype == np.float32
    assert np.allclose(resized[0, :, 0, 0], np.clip((np.arange(20) + 0.5) / 2 - 0.5, 0, 9))


def test_rotation_preserves_bone_lengths():
    positions = np.random.default_rng(1).normal(size=(3, 64, 25, 2)).astype(np.float32)
    matrix = T.random_rotation_matrix(np.random.default_rng(2))
    assert np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(matrix), 1)
    rotated = T.rotate(positions, matrix)
    lengths = lambda x: np.linalg.norm(T.bones(x, NTU25), axis=0)
    assert not np.allclose(rotated, positions)
    assert np.allclose(lengths(rotated), lengths(positions), atol=1e-5)


def test_rotation_matrix_is_rz_ry_rx():
    about_z = T.rotation_matrix([0, 0, np.pi / 2])
    assert np.allclose(about_z @ [1, 0, 0], [0, -1, 0])          # Rz = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
    a, b, c = 0.1, -0.2, 0.25
    rx = T.rotation_matrix([a, 0, 0])
    ry = T.rotation_matrix([0, b, 0])
    rz = T.rotation_matrix([0, 0, c])
    assert np.allclose(T.rotation_matrix([a, b, c]), rz @ ry @ rx)


def test_streams_and_the_spine_variant():
    positions = np.random.default_rng(3).normal(size=(3, 8, 25, 2))
    spine = NTU25.spine_joint
    joint = T.stream(positions, "joint", NTU25, spine_relative_joints=True)
    assert np.array_equal(joint[:, :, spine], positions[:, :, spine])
    assert np.allclose(joint[:, :, 3], positions[:, :, 3] - positions[:, :, spine])
    bone = T.stream(positions, "bone", NTU25)
    assert not bone[:, :, spine].any()                          # the root's self pair
    assert np.array_equal(T.stream(positions, "bone", NTU25, True)[:, :, spine], positions[:, :, spine])
    motion = T.stream(positions, "bone_motion", NTU25)
    assert np.allclose(motion[:, :-1], bone[:, 1:] - bone[:, :-1]) and not motion[:, -1].any()
    with pytest.raises(ValueError, match="unknown stream"):
        T.stream(positions, "velocity", NTU25)


def test_ucla_json_values_are_recovered_from_float32():
    decimals = np.array([0.398318, -0.0157142, 2.70753, 0.0, -3.2e-05, 123.456, 1.0])
    assert np.array_equal(T.ucla_json_values(decimals.astype(np.float32)), decimals)


def test_ucla_frame_sampling():
    assert T.evenly_spaced_frames(1, 52).tolist() == [0] * 52
    assert T.evenly_spaced_frames(104, 52)[[0, -1]].tolist() == [0, 103]
    frames = T.random_frames(10, 52, np.random.default_rng(0))
    assert (np.diff(frames) >= 0).all() and frames.min() >= 0 and frames.max() < 10
    assert np.bincount(frames).max() > 1                        # frames repeat


# ---------------------------------------------------------------------------------------- dataset

@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("train", [False, True])
def test_shapes_and_types(fixture_stores, synthetic_ucla_store, stream, train):
    for path, benchmark, shape in ((fixture_stores["ntu60"], "xsub", (3, 64, 25, 2)),
                                   (synthetic_ucla_store, "xview", (3, 52, 20, 1))):
        ds = SkeletonDataset(path, benchmark=benchmark, part="train", stream=stream, train=train)
        x, label, index = ds[0]
        assert x.shape == shape and x.dtype == np.float32 and np.isfinite(x).all()
        assert isinstance(label, int) and index == 0


def test_window_and_repr(fixture_stores):
    ds = SkeletonDataset(str(fixture_stores["ntu60"]), benchmark="xview", part="test", stream="bone",
                         window=32, spine_relative=True)
    assert ds[1][0].shape == (3, 32, 25, 2)
    text = repr(ds)
    for fact in ("Number of datapoints: 4", str(fixture_stores["ntu60"]), "ntu60 xview", "part: test",
                 "bone", "test, deterministic"):
        assert fact in text


def test_training_items_follow_the_seed(fixture_stores):
    ds = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="train", train=True)
    first = ds.item(2, np.random.default_rng(5))[0]
    assert np.array_equal(first, ds.item(2, np.random.default_rng(5))[0])
    assert not np.allclose(first, ds.item(2, np.random.default_rng(6))[0])
    torch.manual_seed(0)
    a, b = ds[2][0], ds[2][0]
    torch.manual_seed(0)
    assert np.array_equal(a, ds[2][0]) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="Generator"):
        ds.item(2)


def test_test_items_are_deterministic_and_rotation_free(fixture_stores):
    ds = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="test")
    assert np.array_equal(ds[0][0], ds[0][0])
    no_rotation = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="test", train=True,
                                  random_rot=False, p_interval=(0.95,))
    assert np.array_equal(ds[0][0], no_rotation[0][0])
    rotated = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="test", random_rot=True)
    assert rotated.random and not np.allclose(rotated[0][0], ds[0][0])


def test_ntu120_one_actor_samples_repeat_the_actor(fixture_stores):
    path = fixture_stores["ntu120"]
    ds = SkeletonDataset(path, benchmark="xset", part="test", stream="bone")
    zero = SkeletonDataset(path, benchmark="xset", part="test", stream="bone", single_body_fill="zero")
    assert ds.single_body_fill == "duplicate"
    bodies = ds.store.column("n_bodies")[ds.sample_indices]
    assert set(bodies) == {1, 2}
    for k, n in enumerate(bodies):
        x, x_zero = ds[k][0], zero[k][0]
        if n == 1:
            assert np.array_equal(x[..., 1], x[..., 0]) and not x_zero[..., 1].any()
        else:
            assert np.array_equal(x, x_zero)
    ntu60 = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="test")
    assert ntu60.single_body_fill == "zero"


def test_index_is_the_bank_slot(fixture_stores):
    ds = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="train", train=True)
    assert [ds[i][2] for i in range(len(ds))] == list(range(len(ds))) == list(range(ds.bank_size))
    assert ds[-1][2] == len(ds) - 1
    labels = ds.store.column("label")[ds.store.split("xsub", "train")]
    assert [ds[i][1] for i in range(len(ds))] == labels.tolist() == ds.bank_labels.tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_ucla_repeat_shares_the_sample_slot(synthetic_ucla_store):
    ds = SkeletonDataset(synthetic_ucla_store, benchmark="xview", part="train", train=True)
    n = ds.num_samples
    assert (n, ds.repeat, len(ds), ds.bank_size, ds.window) == (6, 5, 30, 6, 52)
    assert [ds[i][2] for i in range(len(ds))] == [i % n for i in range(len(ds))]
    assert [ds[i][1] for i in range(len(ds))] == ds.labels.tolist() * 5
    per_copy = SkeletonDataset(synthetic_ucla_store, benchmark="xview", part="train", train=True, slot_per_copy=True)
    assert [per_copy[i][2] for i in range(len(ds))] == list(range(len(ds)))
    assert per_copy.bank_labels.tolist() == ds.labels.tolist() * 5
    assert len(SkeletonDataset(synthetic_ucla_store, benchmark="xview", part="test")) == 3


def test_ucla_training_inputs_are_normalised_views(synthetic_ucla_store):
    ds = SkeletonDataset(synthetic_ucla_store, benchmark="xview", part="train", train=True)
    items = [ds.item(0, np.random.default_rng(seed))[0] for seed in range(4)]
    for x in items:
        assert x.min() >= -1 and x.max() <= 1
    assert not np.allclose(items[0], items[1])


def test_blockgcn_joint_input(fixture_stores, synthetic_ucla_store):
    for path, benchmark in ((fixture_stores["ntu60"], "xsub"), (synthetic_ucla_store, "xview")):
        plain = SkeletonDataset(path, benchmark=benchmark, part="test")
        ds = SkeletonDataset(path, benchmark=benchmark, part="test", stream="bone_motion",
                             spine_relative=True, return_joint=True)
        x, label, index, joint = ds[1]
        assert np.array_equal(joint, plain[1][0]) and not np.allclose(x, joint)
    train = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="train", train=True,
                            stream="bone", return_joint=True)
    x, _, _, joint = train.item(0, np.random.default_rng(0))
    assert np.allclose(x, T.bones(joint, NTU25))              # the same crop and rotation


def test_in_memory_equals_lazy(fixture_stores):
    lazy = SkeletonDataset(fixture_stores["ntu120"], benchmark="xsub", part="train", stream="joint_motion")
    ram = SkeletonDataset(fixture_stores["ntu120"], benchmark="xsub", part="train", stream="joint_motion",
                          in_memory=True)
    assert "(in memory)" in repr(ram)
    for k in range(len(lazy)):
        assert np.array_equal(lazy[k][0], ram[k][0])


@pytest.mark.parametrize("options, message", [
    ({"stream": "motion"}, "unknown stream"),
    ({"part": "val"}, "part must be"),
    ({"window": 0}, "window must be"),
    ({"repeat": 0}, "repeat must be"),
    ({"p_interval": (0.5, 1.5)}, "p_interval must be"),
    ({"single_body_fill": "copy"}, "single_body_fill must be"),
])
def test_bad_options_are_named(fixture_stores, options, message):
    arguments = {"benchmark": "xsub", "part": "train", **options}
    with pytest.raises(ValueError, match=message):
        SkeletonDataset(fixture_stores["ntu60"], **arguments)


def test_unknown_benchmark_and_ntu_options_on_nw_ucla(fixture_stores, synthetic_ucla_store):
    with pytest.raises(KeyError, match="xset"):
        SkeletonDataset(fixture_stores["ntu60"], benchmark="xset", part="train")
    with pytest.raises(ValueError, match="NTU feeder options"):
        SkeletonDataset(synthetic_ucla_store, benchmark="xview", part="train", random_rot=True)


# ---------------------------------------------------------------------------------------- workers

def batches(ds, **loader_options):
    loader = DataLoader(ds, batch_size=2, shuffle=False, **loader_options)
    return [[t.numpy() for t in batch] for batch in loader]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_give_the_test_batches_of_one_process(fixture_stores, context):
    ds = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="train", stream="bone_motion",
                         spine_relative=True)
    expected = batches(ds, num_workers=0)
    got = batches(ds, num_workers=2, multiprocessing_context=context)
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_workers_draw_different_augmentations(fixture_stores):
    ds = SkeletonDataset(fixture_stores["ntu60"], benchmark="xsub", part="train", train=True)
    loader = DataLoader(ds, batch_size=1, sampler=[0] * 8, num_workers=2, multiprocessing_context="fork",
                        generator=torch.Generator().manual_seed(0))
    epoch = [x[0].numpy() for x, _, _ in loader]
    assert len({item.tobytes() for item in epoch}) == 8       # no two workers, no two draws alike
    again = [x[0].numpy() for x, _, _ in loader]
    assert not any(np.array_equal(a, b) for a, b in zip(epoch, again))   # a new stream each epoch
    same_seed = DataLoader(ds, batch_size=1, sampler=[0] * 8, num_workers=2, multiprocessing_context="fork",
                           generator=torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, x[0].numpy()) for a, (x, _, _) in zip(epoch, same_seed))
