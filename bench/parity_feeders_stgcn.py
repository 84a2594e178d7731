"""Check the training inputs of the ``*-stgcn-*`` recipes against the reference feeders run on our
``stgcn-npy`` export, sample by sample, or write a digest of the reference's outputs as a golden file.

    python bench/parity_feeders_stgcn.py --agcn /path/to/2s-AGCN --hcn /path/to/HCN-pytorch \
        --dataset ntu60 --raw fixtures/ntu60 [--golden fixtures/golden/stgcn_feeders_ntu60.json]

The feeders are NOT part of this project: they are imported from the checkouts given at run time and
run unmodified, on the files ``skeldata export --format stgcn-npy`` writes from a ``--pipeline stgcn``
store built from ``--raw`` (or ``--store``):

* **2s-AGCN** (``feeders/feeder.py``, ``tools.py``) with the feeder arguments of its own configs
  (``config/nturgbd-cross-{subject,view}/train_{joint,bone}.yaml``: ``train_feeder_args`` and
  ``test_feeder_args``, read from the checkout), on ``{part}_data_joint.npy`` and on the
  ``{part}_data_bone.npy`` its ``data_gen/gen_bone_data.py`` writes (run unmodified as a process; it
  reads ``../data/ntu/{xview,xsub}/``, so an NTU-120 benchmark's files take those two folder names).
  Against ``configs/agcn/<dataset>-<bench>-stgcn-{joint,bone}.yaml``.
* **HCN-pytorch** (``feeder/feeder.py``, ``tools.py``) with the ``train_feeder_args`` /
  ``test_feeder_args`` of ``experiments/NTU-RGB-D-{CS,CV}/HCN02/params.json`` (window 64), on
  ``{part}_data_joint.npy`` and a ``{part}_num_frame.npy`` of the store's ``raw_frames`` (the frame count
  on the first line of each ``.skeleton`` file, what HCN's ``ntu_gendata.py`` writes there; checked
  against the files when ``--raw`` is given). Against ``configs/hcn/<dataset>-<bench>-stgcn-joint.yaml``.
  Two imports HCN's feeder makes but never uses, ``torchvision`` and (through ``utils``) ``openpyxl``,
  are replaced by empty modules when they are not installed, and its ``tools`` module gets the ``int()``
  of size-1 arrays that numpy before 2.x allowed (``valid_crop_resize`` calls it on ``np.random.rand(1)``).

Our side is :func:`csre_models.data.sampling.build_data` on the recipe (the datasets training uses). Test parts
are compared exactly. Training parts: 2s-AGCN's recipes switch every augmentation off (deterministic);
HCN's training crop draws from numpy's global generator (``np.random.rand``, ``np.random.randint``), so
for every sample the global generator is seeded (``SEED + position``) before the reference item and again
before ours, which then draws through :class:`LegacyDraws` (``uniform`` and ``integers`` as the legacy
functions): the same crops, compared exactly.

Exits 1 on any difference. ``--golden FILE`` writes, for every recipe and part, the SHA-256 and shape of
the reference's outputs stacked in our sample order, and the names (tests/test_stgcn_feeders.py checks our
outputs against it without the checkouts).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csre_models.config import load_config_file, resolve_config  # noqa: E402
from csre_models.data.sampling import build_data  # noqa: E402
from skeldata.build import build  # noqa: E402
from skeldata.convert.export import export_stgcn_npy  # noqa: E402
from skeldata.store import open_store  # noqa: E402

BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
#: Seed of the global numpy generator before training item ``position``: ``SEED + position``.
SEED = 1000
#: Reference configuration of each benchmark (NTU-120: the NTU-60 cross-subject files, applied unchanged).
AGCN_CONFIG = {"xsub": "nturgbd-cross-subject", "xview": "nturgbd-cross-view", "xset": "nturgbd-cross-subject"}
HCN_EXPERIMENT = {"xsub": "NTU-RGB-D-CS", "xview": "NTU-RGB-D-CV", "xset": "NTU-RGB-D-CS"}


class LegacyDraws:
    """The draws of :func:`csre_models.data.transforms.random_crop_bounds` taken from numpy's global
    generator as HCN's ``valid_crop_resize`` takes them: ``np.random.rand(1) * (high - low) + low`` (one
    double, the same number as ``np.random.uniform``) and ``np.random.randint(low, high)``."""

    @staticmethod
    def uniform(low, high):
        return float(np.random.uniform(low, high))

    @staticmethod
    def integers(low, high):
        return int(np.random.randint(low, high))


def recipes(dataset: str, bench: str) -> Dict[str, Path]:
    stem = f"{dataset}-{bench}-stgcn"
    return {"agcn-joint": ROOT / "configs" / "agcn" / f"{stem}-joint.yaml",
            "agcn-bone": ROOT / "configs" / "agcn" / f"{stem}-bone.yaml",
            "hcn-joint": ROOT / "configs" / "hcn" / f"{stem}-joint.yaml"}


def config_key(config_path: Path) -> str:
    """``agcn/ntu60-xsub-stgcn-joint``: a recipe's name (the agcn and hcn joint files share a file name)."""
    return f"{config_path.parent.name}/{config_path.stem}"


def import_feeders(agcn: Path, hcn: Path):
    """The two reference ``Feeder`` classes, imported from their checkouts (``feeders`` and ``feeder``
    packages: no name clash)."""
    for name in ("torchvision", "openpyxl"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = stub = types.ModuleType(name)
            stub.transforms = types.ModuleType(f"{name}.transforms")
    sys.path[:0] = [str(agcn), str(hcn)]
    from feeders.feeder import Feeder as AgcnFeeder   # 2s-AGCN
    from feeder.feeder import Feeder as HcnFeeder     # HCN-pytorch
    from feeder import tools as hcn_tools
    # valid_crop_resize calls int() on np.random.rand(1) * ...: a size-1 array, which numpy < 2.? converted
    # (with a DeprecationWarning) and numpy 2.4 refuses. The module's int is given that old conversion back.
    hcn_tools.int = lambda value: int(np.asarray(value).item()) if np.ndim(value) else int(value)
    return AgcnFeeder, HcnFeeder


def export(store_path: Path, dataset: str, data_root: Path, raw: Path = None) -> Dict[str, Path]:
    """``stgcn-npy`` of every benchmark into ``data_root/ntu/<folder>`` (folders ``xsub``/``xview`` as
    ``gen_bone_data.py`` expects them), with HCN's ``num_frame.npy`` from ``raw_frames``."""
    folders = {}
    with open_store(store_path) as store:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in store.column("name")]
        raw_frames = dict(zip(names, store.column("raw_frames").astype(int)))
        for bench, folder_name in zip(BENCHMARKS[dataset], ("xsub", "xview")):
            folder = data_root / "ntu" / folder_name
            export_stgcn_npy(store, bench, folder)
            for part in ("train", "val"):
                with open(folder / f"{part}_label.pkl", "rb") as handle:
                    files, _ = pickle.load(handle)
                counts = [raw_frames[Path(f).stem] for f in files]
                if raw is not None:
                    on_disk = [int(next(iter((raw / f).open()))) for f in files]
                    assert counts == on_disk, f"raw_frames differ from the files' frame counts ({bench} {part})"
                np.save(folder / f"{part}_num_frame.npy", np.asarray(counts, dtype=np.int64))
            folders[bench] = folder
    return folders


def run_gen_bone_data(agcn: Path, data_root: Path) -> None:
    """2s-AGCN's ``data_gen/gen_bone_data.py``, unmodified, from a folder beside ``data_root``."""
    cwd = data_root.parent / "run"
    cwd.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, str(agcn / "data_gen" / "gen_bone_data.py")], cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gen_bone_data.py failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def feeder_args(kind: str, stream: str, bench: str, agcn: Path, hcn: Path, part: str) -> dict:
    """The reference recipe's feeder arguments for ``part`` (``train``/``test``), read from the checkout."""
    if kind == "agcn":
        values = yaml.safe_load((agcn / "config" / AGCN_CONFIG[bench] / f"train_{stream}.yaml").read_text())
    else:
        values = json.loads((hcn / "experiments" / HCN_EXPERIMENT[bench] / "HCN02" / "params.json").read_text())
    return {k: v for k, v in values[f"{part}_feeder_args"].items() if k not in ("data_path", "label_path")}


def compare_recipe(feeder_class, args: dict, folder: Path, file_part: str, stream: str, ours, train: bool):
    """Reference outputs stacked in our order, and (samples, max |difference|, names)."""
    extra = {"num_frame_path": str(folder / f"{file_part}_num_frame.npy")} if "num_frame_path" in \
        feeder_class.__init__.__code__.co_varnames else {}
    reference = feeder_class(data_path=str(folder / f"{file_part}_data_{stream}.npy"),
                             label_path=str(folder / f"{file_part}_label.pkl"), **extra, **args)
    row = {Path(name).stem: i for i, name in enumerate(reference.sample_name)}
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in ours.names]
    outputs, worst = [], 0.0
    for position, name in enumerate(names):
        np.random.seed(SEED + position)
        theirs = np.asarray(reference[row[name]][0])
        np.random.seed(SEED + position)
        mine, label, _ = ours.item(position, LegacyDraws() if ours.random else None)
        assert label == int(reference.label[row[name]]), f"label of {name}"
        assert mine.shape == theirs.shape, f"{name}: shape {mine.shape} against {theirs.shape}"
        worst = max(worst, float(np.abs(mine.astype(np.float64) - theirs.astype(np.float64)).max()))
        outputs.append(theirs.astype(np.float32))
    return np.stack(outputs), worst, names


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agcn", type=Path, required=True, help="2s-AGCN checkout (lshiwjx/2s-AGCN)")
    parser.add_argument("--hcn", type=Path, required=True, help="HCN-pytorch checkout (huguyuehuhu/HCN-pytorch)")
    parser.add_argument("--dataset", choices=sorted(BENCHMARKS), required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw", type=Path, help=".skeleton files to build a --pipeline stgcn store from")
    source.add_argument("--store", type=Path, help="a store built with --pipeline stgcn")
    parser.add_argument("--golden", type=Path, help="write the digest of the reference outputs here")
    args = parser.parse_args(argv)
    for path, needed in ((args.agcn, "feeders/feeder.py"), (args.hcn, "feeder/feeder.py")):
        if not (path / needed).is_file():
            parser.error(f"{path}: no {needed}")
    AgcnFeeder, HcnFeeder = import_feeders(args.agcn.resolve(), args.hcn.resolve())
    golden, failed = {}, False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = args.store
        if store is None:
            store = tmp / "store.h5"
            build([args.raw], store, args.dataset, jobs=1, pipeline="stgcn")
        folders = export(store, args.dataset, tmp / "data", args.raw)
        run_gen_bone_data(args.agcn.resolve(), tmp / "data")
        for bench, folder in folders.items():
            for recipe, config_path in recipes(args.dataset, bench).items():
                kind, stream = recipe.split("-")
                config = resolve_config(load_config_file(str(config_path)),
                                        {"store": str(store), "benchmark": bench, "val_fraction": 0.0})
                data = build_data(config, joint_input=False)
                for part, file_part, ours in (("train", "train", data.train), ("test", "val", data.test)):
                    feeder = AgcnFeeder if kind == "agcn" else HcnFeeder
                    outputs, worst, names = compare_recipe(
                        feeder, feeder_args(kind, stream, bench, args.agcn, args.hcn, part), folder, file_part,
                        stream, ours, train=part == "train")
                    ok = worst == 0.0
                    failed |= not ok
                    print(f"{config_key(config_path):39s} {part:5s} {len(names):3d} samples "
                          f"{tuple(outputs.shape[1:])}  max |diff| {worst:.3g}  {'ok' if ok else 'DIFFERENT'}")
                    golden.setdefault(config_key(config_path), {})[part] = {
                        "sha256": hashlib.sha256(np.ascontiguousarray(outputs).tobytes()).hexdigest(),
                        "shape": list(outputs.shape), "names": names}
    if args.golden:
        args.golden.write_text(json.dumps({
            "made_by": "bench/parity_feeders_stgcn.py", "dataset": args.dataset, "train_seed": SEED,
            "reference": {"2s-AGCN": "feeders/feeder.py", "HCN-pytorch": "feeder/feeder.py (HCN02 params.json)"},
            "recipes": golden}, indent=1) + "\n")
        print(f"wrote {args.golden}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
