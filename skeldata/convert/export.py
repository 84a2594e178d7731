"""Export a store to the formats existing code reads.

``sgn-npz``: the ``NTU60_CS.npz``-style file that the SGN-family ``seq_transformation.py`` writes and
that CTR-GCN, InfoGCN, Hyperformer, BlockGCN and CSRE train from: ``x_train``, ``y_train``,
``x_test``, ``y_test``; ``x`` float32 ``(N, T, 150)`` with ``T`` the longest sample *of the store*,
zero padded at the end; ``y`` one-hot float64; samples in the benchmark's published order. A
one-actor sample has zeros in columns 75:150 for NTU60 and a copy of actor 1 for NTU120, as the two
published scripts do. The file is written as ``np.savez`` writes it (uncompressed zip, ``.npy``
members), but row block by row block, so memory stays bounded for the full data sets (the padded
NTU120 arrays are 20 GB).

``pyskl``: the annotation pickle of pyskl and mmaction2 (``PoseDataset``): ``split`` maps
``<benchmark>_train`` / ``<benchmark>_val`` (our ``test``) to lists of sample names in the store's
split order; ``annotations`` holds one dict per sample in store order, with ``frame_dir`` (the name),
``label``, ``keypoint`` float32 ``(M, T, V, 3)`` (M the sample's bodies, no padding) and
``total_frames``. The annotations are read from the store and pickled one at a time
(:mod:`skeldata.convert.pyskl`), so memory stays at one sample.

``stgcn-npy`` (a store built with ``--pipeline stgcn`` only): the folder of files 2s-AGCN's
``ntu_gendata.py`` / MS-G3D's ``ntu120_gendata.py`` write for one benchmark: ``train_data_joint.npy``
and ``val_data_joint.npy``, float32 ``(N, 3, 300, 25, 2)``, and ``train_label.pkl`` /
``val_label.pkl``, each ``pickle((names, labels))`` with names the raw file names
(``S001C001P001R001A001.skeleton``) and labels ``action - 1`` as ints. ``val`` is the store's test
part. Samples are in name order (MS-G3D sorts its file list; 2s-AGCN takes ``os.listdir`` order,
which depends on the file system, so its files hold the same rows in another order). MS-G3D's NTU120
pickle holds each raw file's full path, which depends on where it ran: ours holds the file name. The
npy files are written through a numpy memmap one sample at a time, so memory stays bounded.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple, Union

import h5py
import numpy as np

from ..output import replacing
from ..splits import PARTS, get_benchmark
from ..store import Store, pipeline_name
from . import pyskl

#: The files ``export_stgcn_npy`` writes into its folder, by part.
STGCN_FILES = {part: (f"{part}_data_joint.npy", f"{part}_label.pkl") for part in ("train", "val")}


def store_pipeline(store: Store) -> str:
    """``sgn`` or ``stgcn``: the ``skeldata build --pipeline`` that made an NTU store."""
    return pipeline_name(store.attrs)


def export_stgcn_npy(store: Store, benchmark: str, out: Union[str, Path],
                     progress: Callable[[int], None] = lambda n: None) -> Dict[str, int]:
    """Write the ST-GCN-lineage ``{train,val}_data_joint.npy`` and ``{train,val}_label.pkl`` of
    ``benchmark`` into the folder ``out``; returns the sample count of each part."""
    get_benchmark(store.dataset.name, benchmark)
    if store_pipeline(store) != "stgcn":
        raise ValueError(f"stgcn-npy needs a store built with --pipeline stgcn; {store.path} was built with "
                         f"the {store_pipeline(store)} pipeline")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = store.column("name")
    labels = store.column("label")
    sizes = {}
    for part, source in (("train", "train"), ("val", "test")):
        indices = np.sort(store.split(benchmark, source))   # the store is in name order
        data_name, label_name = STGCN_FILES[part]
        with replacing(out / data_name) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                              shape=(len(indices), 3, 300, store.layout.num_joints,
                                                     store.dataset.max_bodies))
            for row, i in enumerate(indices):
                frames = store.sequence(int(i), "joint")     # (300, M, V, 3)
                array[row] = frames.transpose(3, 0, 2, 1)
                progress(1)
            array.flush()
            del array
        label_pair = ([f"{names[i].decode() if isinstance(names[i], bytes) else names[i]}.skeleton"
                       for i in indices], [int(labels[i]) for i in indices])
        with replacing(out / label_name) as tmp:
            with open(tmp, "wb") as handle:
                pickle.dump(label_pair, handle)
        sizes[part] = len(indices)
    return sizes

ROWS_PER_BLOCK = 256


def export_sgn_npz(store: Store, benchmark: str, out: Union[str, Path],
                   progress: Callable[[int], None] = lambda n: None) -> Tuple[int, int]:
    """Write the SGN-family npz of ``benchmark`` to ``out``; returns ``(train, test)`` sample counts."""
    get_benchmark(store.dataset.name, benchmark)  # a clear error for an unknown benchmark
    if store.layout.name != "ntu25":
        raise ValueError(f"sgn-npz is an NTU format; {store.path} holds {store.dataset.name}")
    if store_pipeline(store) != "sgn":
        raise ValueError(f"sgn-npz needs a store built with the sgn pipeline; {store.path} was built with "
                         f"--pipeline {store_pipeline(store)} (export it with --format stgcn-npy)")
    n_frames = store.column("n_frames")
    n_bodies = store.column("n_bodies")
    labels = store.column("label").astype(np.int64)
    width = store.layout.num_joints * 3 * store.dataset.max_bodies
    max_frames = int(n_frames.max()) if len(n_frames) else 0
    duplicate = store.dataset.single_body_fill == "duplicate"
    parts = {part: store.split(benchmark, part) for part in ("train", "test")}

    def x_blocks(indices: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(indices), ROWS_PER_BLOCK):
            chunk = indices[start:start + ROWS_PER_BLOCK]
            block = np.zeros((len(chunk), max_frames, width), dtype=np.float32)
            for row, i in enumerate(chunk):
                frames = store.sequence(int(i), "joint").reshape(int(n_frames[i]), width)
                block[row, :len(frames)] = frames
                if duplicate and n_bodies[i] == 1:
                    half = width // 2
                    block[row, :len(frames), half:] = frames[:, :half]
            progress(len(chunk))
            yield block

    def y_blocks(indices: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(indices), ROWS_PER_BLOCK):
            chunk = labels[indices[start:start + ROWS_PER_BLOCK]]
            block = np.zeros((len(chunk), store.dataset.num_classes), dtype=np.float64)
            block[np.arange(len(chunk)), chunk] = 1
            yield block

    with replacing(out) as tmp:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for part in ("train", "test"):
                indices = parts[part]
                _write_npy_member(archive, f"x_{part}", np.float32, (len(indices), max_frames, width),
                                  x_blocks(indices))
                _write_npy_member(archive, f"y_{part}", np.float64, (len(indices), store.dataset.num_classes),
                                  y_blocks(indices))
    return len(parts["train"]), len(parts["test"])


def _write_npy_member(archive: zipfile.ZipFile, key: str, dtype, shape: Tuple[int, ...],
                      blocks: Iterator[np.ndarray]) -> None:
    """One ``key.npy`` member, written as ``np.save`` would write the whole array, block by block."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with archive.open(f"{key}.npy", mode="w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        written = 0
        for block in blocks:
            member.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
            written += len(block)
        if written != shape[0]:
            raise RuntimeError(f"{key}: wrote {written} rows, expected {shape[0]}")


def export_pyskl(store: Store, out: Union[str, Path],
                 progress: Callable[[int], None] = lambda n: None) -> Dict[str, int]:
    """Write the pyskl / mmaction2 annotation pickle of ``store`` to ``out``; returns the sample count
    of every split, by pyskl split name."""
    names = store.names
    split = {pyskl.split_key(bench, part): [names[i] for i in store.split(bench, part)]
             for bench in store.benchmarks for part in PARTS}
    labels = store.column("label")
    n_bodies = store.column("n_bodies")

    def annotations() -> Iterator[dict]:
        for i, joints in enumerate(_joints_in_store_order(store)):
            yield pyskl.annotation(names[i], int(labels[i]), joints, int(n_bodies[i]))
            progress(1)

    pyskl.write_annotation_file(out, split, annotations())
    return {key: len(members) for key, members in split.items()}


def _joints_in_store_order(store: Store, block_frames: int = 8192) -> Iterator[np.ndarray]:
    """The joints of every sample in store order, read from the documented layout (``/streams/joint``
    and the offsets) a few chunks at a time: about ten times faster than a read per sample."""
    offsets = store.offsets
    with h5py.File(store.path, "r") as h5:
        joints = h5["streams/joint"]
        start = 0
        while start < len(store):
            last = int(np.searchsorted(offsets, offsets[start] + block_frames, side="right")) - 1
            end = min(max(last, start + 1), len(store))
            block = joints[offsets[start]:offsets[end]]
            for i in range(start, end):
                yield block[offsets[i] - offsets[start]:offsets[i + 1] - offsets[start]]
            start = end
