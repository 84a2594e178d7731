"""The pyskl / mmaction2 skeleton annotation file: one pickle holding ::

    {"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], ...},
     "annotations": [{"frame_dir": str, "label": int, "keypoint": (M, T, V, C) float,
                      "total_frames": T}, ...]}

as pyskl's ``tools/data/ntu_preproc.py`` writes it and ``PoseDataset`` (pyskl and mmaction2) reads it:
``split[name]`` selects the annotations whose ``frame_dir`` it lists, ``total_frames`` must equal the
keypoint's T (``PreNormalize3D`` asserts it), M is the number of bodies of the sample (1 or 2 for
NTU), and 3D skeletons have no ``keypoint_score``. The split names are ``<benchmark>_train`` and
``<benchmark>_val``; pyskl's ``val`` part is the store's ``test`` part.

Writing streams the annotations into the pickle one by one (the pickler's memo is off, so nothing
written is kept), and pickles arrays as ``numpy.ndarray(shape, dtype, buffer)``, a form every numpy
version loads (numpy 2's own array pickles name ``numpy._core``, which numpy before 1.26 lacks).
Reading refuses any pickle that refers to something other than containers and numpy arrays, since
unpickling can run code.
"""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Tuple, Union

import numpy as np

from ..errors import SkeldataError
from ..output import replacing

PROTOCOL = 4
PART_SUFFIXES = {"train": "train", "test": "val"}  # store part -> pyskl split-name suffix
_PARTS_OF_SUFFIX = {"train": "train", "val": "test", "test": "test"}

#: What a pickle of containers and numpy arrays refers to (pickles of numpy 1 and 2, protocols 2 to 5).
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "bytearray"),
    ("builtins", "set"), ("builtins", "frozenset"),
}


def split_key(benchmark: str, part: str) -> str:
    """The pyskl split name of a store part: ``("xsub", "test")`` -> ``"xsub_val"``."""
    return f"{benchmark}_{PART_SUFFIXES[part]}"


def parse_split_key(key: str) -> Tuple[str, str]:
    """``"xsub_val"`` -> ``("xsub", "test")``; ``_test`` is read as ``_val``.

    Raises:
        ValueError: ``key`` is not ``<benchmark>_train``, ``<benchmark>_val`` or ``<benchmark>_test``.
    """
    benchmark, _, suffix = str(key).rpartition("_")
    if not benchmark or suffix not in _PARTS_OF_SUFFIX:
        raise ValueError(f"split {key!r} is not named <benchmark>_train or <benchmark>_val")
    return benchmark, _PARTS_OF_SUFFIX[suffix]


def annotation(name: str, label: int, joints: np.ndarray, n_bodies: int) -> dict:
    """The annotation of one sample: store joints ``(T, bodies, V, 3)`` -> keypoint ``(M, T, V, 3)``."""
    keypoint = np.ascontiguousarray(joints[:, :n_bodies].transpose(1, 0, 2, 3), dtype=np.float32)
    return {"frame_dir": name, "label": int(label), "keypoint": keypoint, "total_frames": int(len(joints))}


# --------------------------------------------------------------------------------------------- writing

class _StreamedList:
    """Pickles as a plain list whose items come from an iterator, so they never exist all at once."""

    def __init__(self, items: Iterable):
        self._items = items

    def __reduce__(self):
        return list, (), None, iter(self._items)


class _PortablePickler(pickle.Pickler):
    """Pickles arrays as ``numpy.ndarray(shape, dtype, bytearray)``: writable once loaded, and loadable
    by numpy 1 and 2 alike."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            data = np.ascontiguousarray(obj)
            return np.ndarray, (data.shape, data.dtype.str, bytearray(data.data))
        return NotImplemented


def write_annotation_file(path: Union[str, Path], split: Mapping[str, List[str]],
                          annotations: Iterable[dict]) -> None:
    """Write ``{"split": split, "annotations": [...]}`` to ``path``, taking the annotations one at a
    time from ``annotations``. The file appears under its name only when complete."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as stream:
            pickler = _PortablePickler(stream, protocol=PROTOCOL)
            pickler.fast = True  # no memo: an annotation is forgotten once written
            pickler.dump({"split": dict(split), "annotations": _StreamedList(annotations)})


# --------------------------------------------------------------------------------------------- reading

class _AnnotationUnpickler(pickle.Unpickler):
    """Loads containers and numpy arrays only; numpy 1 and 2 module names are both understood."""

    def __init__(self, stream, path: Path):
        super().__init__(stream)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise SkeldataError(f"{self.path}: the pickle refers to {module}.{name}, which an annotation file "
                                f"does not hold; not loading it (unpickling can run code)")
        if module.startswith("numpy._core.") and not _has_module("numpy._core"):
            module = "numpy.core." + module[len("numpy._core."):]
        return super().find_class(module, name)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def read_annotation_file(path: Union[str, Path]) -> Tuple[Dict[str, list], list]:
    """``(split, annotations)`` of a pyskl pickle, with its top-level structure checked.

    The whole file is loaded: a pickle cannot be read in parts. The annotations themselves are
    checked by :func:`check_annotation` as they are used.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            _check_pickle_start(stream.read(2), path)
            stream.seek(0)
            data = _AnnotationUnpickler(stream, path).load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc):  # the C unpickler says "data was truncated"
            raise SkeldataError(f"{path}: the pickle ends early (truncated file?)") from None
        raise SkeldataError(f"{path}: not a pickle this reader understands ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise SkeldataError(f"{path}: holds a {type(data).__name__}; a pyskl annotation file holds a dict "
                            f"with 'split' and 'annotations'")
    missing = [key for key in ("split", "annotations") if key not in data]
    if missing:
        raise SkeldataError(f"{path}: no {' or '.join(repr(k) for k in missing)} key; a pyskl annotation file "
                            f"holds 'split' and 'annotations' (this one: {', '.join(map(repr, data)) or 'none'})")
    split, annotations = data["split"], data["annotations"]
    if not isinstance(split, dict) or not all(isinstance(v, (list, tuple)) for v in split.values()):
        raise SkeldataError(f"{path}: 'split' must map split names to lists of frame_dir names")
    if not isinstance(annotations, (list, tuple)):
        raise SkeldataError(f"{path}: 'annotations' is a {type(annotations).__name__}; expected a list of dicts")
    return split, list(annotations)


def _check_pickle_start(head: bytes, path: Path) -> None:
    """Pickles of protocol 2 and later (what pyskl, mmcv and mmengine write) start with PROTO."""
    if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        hint = " (a zip archive: an npz? use --format sgn-npz)" if head.startswith(b"PK") else ""
        raise SkeldataError(f"{path}: not a pickle of protocol 2 or later; it starts with {head!r}{hint}")


def frame_dirs(annotations: list, path: Path) -> List[str]:
    """The ``frame_dir`` of every annotation: each annotation a dict, each name a non-empty string
    that no other annotation has."""
    names: Dict[str, int] = {}
    for index, item in enumerate(annotations):
        where = f"{path}: annotation {index}"
        if not isinstance(item, dict):
            raise SkeldataError(f"{where} is a {type(item).__name__}; expected a dict")
        if "frame_dir" not in item:
            raise SkeldataError(f"{where} has no frame_dir")
        name = item["frame_dir"]
        if not isinstance(name, str) or not name:
            raise SkeldataError(f"{where}: frame_dir is {name!r}; expected a non-empty name")
        if name in names:
            raise SkeldataError(f"{path}: frame_dir {name!r} is in annotations {names[name]} and {index}")
        names[name] = index
    return list(names)


def check_annotation(item: dict, index: int, path: Path, num_joints: int, max_bodies: int,
                     num_classes: int) -> Tuple[int, np.ndarray]:
    """``(label, keypoint float32 (M, T, V, 3))`` of annotation ``index`` (whose ``frame_dir``
    :func:`frame_dirs` has checked), or an error naming the annotation and what is wrong with it for
    a data set of these sizes."""
    where = f"{path}: annotation {index} ({item['frame_dir']})"
    missing = [key for key in ("label", "keypoint") if key not in item]
    if missing:
        raise SkeldataError(f"{where} has no {', '.join(missing)}")
    label = item["label"]
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise SkeldataError(f"{where}: label is {label!r}; expected an integer")
    if not 0 <= label < num_classes:
        raise SkeldataError(f"{where}: label {label} is outside 0..{num_classes - 1} of a {num_classes}-class "
                            f"data set")
    keypoint = item["keypoint"]
    if not isinstance(keypoint, np.ndarray) or keypoint.ndim != 4:
        shape = getattr(keypoint, "shape", type(keypoint).__name__)
        raise SkeldataError(f"{where}: keypoint is {shape}; expected an array (M bodies, T frames, V joints, C)")
    bodies, frames, joints, coords = keypoint.shape
    if coords != 3:
        raise SkeldataError(f"{where}: keypoint has {coords} coordinates per joint; skeldata stores 3D skeletons "
                            f"(x, y, z), not 2D pose estimates")
    if joints != num_joints:
        raise SkeldataError(f"{where}: keypoint has {joints} joints; the data set's layout has {num_joints}")
    if not 1 <= bodies <= max_bodies:
        raise SkeldataError(f"{where}: keypoint has {bodies} bodies; the data set holds 1 to {max_bodies}")
    if frames < 1:
        raise SkeldataError(f"{where}: keypoint has no frame")
    if "total_frames" in item and item["total_frames"] != frames:
        raise SkeldataError(f"{where}: total_frames is {item['total_frames']} but keypoint has {frames} frames")
    if keypoint.dtype.kind != "f":
        raise SkeldataError(f"{where}: keypoint is {keypoint.dtype}; expected floating point coordinates")
    if not np.isfinite(keypoint).all():
        raise SkeldataError(f"{where}: keypoint holds a value that is not finite")
    values = keypoint.astype(np.float32)
    if keypoint.dtype.itemsize > 4 and not np.array_equal(values, keypoint):
        raise SkeldataError(f"{where}: keypoint holds {keypoint.dtype} values that float32 cannot represent "
                            f"exactly; the store holds float32")
    return int(label), values


def iter_split(split: Mapping[str, list], path: Path) -> Iterator[Tuple[str, str, str, list]]:
    """``(key, benchmark, part, names)`` of every split entry, with a clear error for a bad name."""
    for key, names in split.items():
        try:
            benchmark, part = parse_split_key(key)
        except ValueError as exc:
            raise SkeldataError(f"{path}: {exc}") from None
        yield key, benchmark, part, list(names)
