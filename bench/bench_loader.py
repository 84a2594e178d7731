"""Loader throughput with the NTU training transforms: store-backed dataset against an in-RAM padded array.

The reference feeders hold the whole benchmark part in RAM as one padded ``(N, C, 300, V, M)`` float32
array (the npz after ``reshape``/``transpose``) and run crop, resize, rotation and the stream on each
item. ``SkeletonDataset`` reads each sample's unpadded frames from the HDF5 store instead (or, with
``in_memory=True``, from an unpadded copy in RAM). All three run the same transforms here, so the
table shows what the data access costs::

    python bench/bench_loader.py                      # 300 synthetic files, 0 and 2 workers
    python bench/bench_loader.py --n 1000 --items 4096

Synthetic NTU60 files are written with ``skeldata.synthetic`` and built into a store in a temporary
folder (or ``--work DIR``). Each configuration iterates ``--items`` shuffled training items in batches
of ``--batch`` after one warm-up epoch (persistent workers, so start-up is not timed).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from csre_models.data import SkeletonDataset
from csre_models.data import transforms as T
from skeldata.build import build
from skeldata.store import open_store
from skeldata.synthetic import write_set

PADDED_FRAMES = 300


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="synthetic .skeleton files")
    parser.add_argument("--work", type=Path, help="folder for the files and the store (default: a temporary one)")
    parser.add_argument("--items", type=int, default=2048, help="timed items per configuration")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--stream", default="joint", choices=T.STREAMS)
    return parser.parse_args()


class PaddedArrayDataset(Dataset):
    """The reference feeders' situation: the part as one padded ``(N, C, 300, V, M)`` array in RAM,
    with the same training transforms as ``SkeletonDataset`` (valid-frame crop over the padded
    frames, resize, rotation, stream)."""

    def __init__(self, store_path: Path, benchmark: str, part: str, stream: str, window: int = 64):
        store = open_store(store_path)
        self.layout = store.layout
        self.stream, self.window = stream, window
        indices = store.split(benchmark, part)
        self.labels = store.column("label")[indices].astype(np.int64)
        self.data = np.zeros((len(indices), 3, PADDED_FRAMES, self.layout.num_joints, store.dataset.max_bodies),
                             dtype=np.float32)
        for row, i in enumerate(indices):
            frames = T.to_feeder_layout(store.sequence(int(i), "joint"))[:, :PADDED_FRAMES]
            self.data[row, :, :frames.shape[1]] = frames

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 63 - 1, ())))
        data = np.array(self.data[index])
        start, stop = T.random_crop_bounds(T.valid_frame_count(data), rng)
        positions = T.rotate(T.resize(data[:, start:stop], self.window), T.random_rotation_matrix(rng))
        return T.stream(positions, self.stream, self.layout), int(self.labels[index]), index


def make_store(work: Path, n: int) -> Path:
    """Synthetic NTU60 files and their store under ``work``."""
    write_set(work / "raw", n, seed=0)
    store = work / "synthetic.h5"
    build([work / "raw"], store, "ntu60")
    return store


def samples_per_second(dataset: Dataset, workers: int, items: int, batch: int) -> float:
    """Training items per second over ``items`` shuffled items, after one untimed warm-up epoch."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    for _ in loader:
        pass
    seen, start = 0, time.perf_counter()
    while seen < items:
        for x, _, _ in loader:
            seen += len(x)
            if seen >= items:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        store = make_store(work, args.n)
        datasets: Dict[str, Dataset] = {
            "store (HDF5, lazy)": SkeletonDataset(store, "xsub", "train", stream=args.stream, train=True),
            "store (in_memory=True)": SkeletonDataset(store, "xsub", "train", stream=args.stream, train=True,
                                                      in_memory=True),
            "padded array in RAM": PaddedArrayDataset(store, "xsub", "train", args.stream),
        }
        frames = open_store(store).column("n_frames")
        workers: List[int] = [int(w) for w in args.workers.split(",")]
        print(f"{args.n} synthetic files -> {len(frames)} samples ({int(frames.mean())} frames on average), "
              f"xsub train: {len(datasets['padded array in RAM'])} samples; stream {args.stream}, "
              f"batch {args.batch}, {args.items} items per row, torch threads {torch.get_num_threads()}")
        print(f"{'source':<26}" + "".join(f"{f'{w} workers':>14}" for w in workers) + "   (samples/s)")
        for name, dataset in datasets.items():
            rates = [samples_per_second(dataset, w, args.items, args.batch) for w in workers]
            print(f"{name:<26}" + "".join(f"{rate:>14,.0f}" for rate in rates))


if __name__ == "__main__":
    main()
