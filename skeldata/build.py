"""From raw folders and zip files to a store: file discovery, the per-file pipeline run in worker
processes, and the single writer.

``build`` runs extract, denoise and transform on each NTU file in one pass (nothing intermediate is
written); for NW-UCLA it stores the joints as they are. ``extract``, ``denoise`` and ``transform``
run the NTU stages one at a time through files of their own, for inspection and debugging;
``transform(denoise(extract(...)))`` writes the same store as ``build``.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple, Union

import numpy as np

from ._h5 import DEFAULT_COMPRESSION
from ._parallel import WorkerPool
from .datasets import DatasetSpec, get_dataset
from .errors import SampleDropped, SkeldataError
from .formats._archives import archive_entries, close_archives
from .formats._files import RawSource
from .formats.ntu import has_compiled_reader
from .pipeline import denoise as denoise_stage
from .pipeline import stgcn as stgcn_stage
from .pipeline.denoise import denoise
from .pipeline.transform import centre, to_bodies
from .process import NTU_PIPELINES, PROCESSORS, FileOutcome, extract_ntu_file, report_columns
from .store import DEFAULT_STREAMS, REPORT_COLUMNS, StoreWriter, compute_splits, sample_columns

PathLike = Union[str, Path]
#: What each data set family's pipeline does, recorded in the store's ``pipeline`` attribute.
PIPELINE_DESCRIPTIONS = {
    "ntu": {
        "reference": "SGN-family get_raw_skes_data.py / get_raw_denoised_data.py / seq_transformation.py "
                     "(microsoft/SGN, as shipped by CTR-GCN and CSRE)",
        "denoise": denoise_stage.PARAMETERS,
        "centre": "SpineMid (joint 2) of actor 1 in its first non-zero frame; absent actors reset to zero",
        "frames_without_body": "removed",
        "name": "sgn",
    },
    "stgcn": {
        "name": "stgcn",
        "reference": "2s-AGCN data_gen/ntu_gendata.py + preprocess.py (NTU60), MS-G3D data_gen/ntu120_gendata.py "
                     "(NTU120)",
        "rules": stgcn_stage.PARAMETERS,
        "bodies": "the two body slots (position in the frame's list, 4 read) of largest std(x)+std(y)+std(z)",
        "frames": "300: frames without a body kept in place, tail filled by repeating the body's frames",
        "centre": "SpineMid (joint 2) of body 0, frame by frame",
        "rotation": "SpineBase->SpineMid of body 0, frame 0, onto +z; ShoulderLeft->ShoulderRight onto +x",
    },
    "ucla": {
        "reference": "NW-UCLA all_sqe JSON files as CTR-GCN distributes them",
        "values": "the JSON skeletons as float32, not centred (the feeders centre and normalise)",
    },
}


# ------------------------------------------------------------------------------------------ discovery

def discover(raw_dirs: Sequence[PathLike], suffix: str = ".skeleton") -> List[Tuple[str, RawSource]]:
    """All ``*.skeleton`` files under the folders (recursively) and in the zip files, as ``(name, source)``
    sorted by name. A zip is only listed here: its members are read in place by the workers.

    Raises:
        SkeldataError: a path is neither a folder nor a readable zip file, holds no such file, or two files
        share a name.
    """
    found: Dict[str, RawSource] = {}
    for raw_dir in raw_dirs:
        raw_dir = Path(raw_dir)
        if raw_dir.is_dir():
            entries = [(path.name[:-len(suffix)], path) for path in sorted(raw_dir.rglob(f"*{suffix}"))]
            where = "in this folder or below it"
        elif raw_dir.is_file():
            entries = archive_entries(raw_dir, suffix)
            where = "in this zip file"
        else:
            raise SkeldataError(f"--raw {raw_dir}: no such folder or zip file")
        if not entries:
            raise SkeldataError(f"--raw {raw_dir}: no {suffix} file {where}")
        for name, source in entries:
            if name in found:
                first = found[name]
                if str(first) == str(source):
                    raise SkeldataError(f"sample {name} is twice in {source.archive}: two members are named "
                                        f"{source.member}")
                raise SkeldataError(f"sample {name} is in two files: {first} and {source}")
            found[name] = source
    return sorted(found.items())


# ---------------------------------------------------------------------------------------- summaries

@dataclass
class BuildSummary:
    """What a build did, for the one-screen summary and for tests."""

    dataset: str
    output: str
    files: int = 0
    samples: int = 0
    frames: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_names: Dict[str, List[str]] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    denoising: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1
    started: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> "BuildSummary":
        self.seconds = time.perf_counter() - self.started
        return self

    def record_drop(self, name: str, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        self.dropped_names.setdefault(reason, []).append(name)
        if reason == "malformed":
            self.errors.append(detail)


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterator:
    if not enabled:
        return iter(iterable)
    from tqdm import tqdm
    return iter(tqdm(iterable, total=total, desc=desc, unit="file", dynamic_ncols=True, leave=False))


# ------------------------------------------------------------------------------------------- build

def build(raw_dirs: Sequence[PathLike], out: PathLike, dataset: str, jobs: int = 1,
          progress: bool = False, compression: str = DEFAULT_COMPRESSION, streams: Sequence[str] = DEFAULT_STREAMS,
          pipeline: str = "sgn") -> BuildSummary:
    """Raw ``.skeleton`` folders to a store in one streaming pass.

    ``pipeline`` (NTU only): ``sgn`` (the SGN-family scripts, default) or ``stgcn`` (the ST-GCN lineage:
    2s-AGCN / MS-G3D ``ntu_gendata``; every sample 300 frames, :mod:`skeldata.pipeline.stgcn`).

    Every file is accounted for: written as a sample, or recorded in the store's ``dropped`` table
    with its reason (``malformed`` files too: a bad file never stops the build; the summary's
    ``errors`` lists them so that the caller can fail).
    """
    if pipeline not in NTU_PIPELINES:
        raise SkeldataError(f"unknown pipeline {pipeline!r}; known: {', '.join(NTU_PIPELINES)}")
    if pipeline != "sgn" and get_dataset(dataset).family != "ntu":
        raise SkeldataError(f"--pipeline {pipeline} is an NTU pipeline; {dataset} has one pipeline")
    spec, files, summary, attrs = _start(raw_dirs, out, dataset, jobs)
    _, process = PROCESSORS[spec.family]  # the family's default pipeline (sgn for NTU)
    if spec.family == "ntu":
        if pipeline != "sgn":
            process = NTU_PIPELINES[pipeline]
        attrs["pipeline"] = PIPELINE_DESCRIPTIONS["stgcn" if pipeline == "stgcn" else "ntu"]
        if pipeline == "stgcn":
            attrs["single_body_fill"] = "zero"   # the ST-GCN-lineage files never copy a body into slot 2
    # The SGN pipeline's files are parsed in threads where the compiled reader is built: it parses without the
    # GIL, and the results and the chunks to encode then reach the writer without being pickled between
    # processes (docs/performance.md, "skeldata build"). Other pipelines spend their time in Python: processes.
    threads = spec.family == "ntu" and pipeline == "sgn" and has_compiled_reader()
    pool = WorkerPool(jobs, threads=threads)  # before the output file is opened: workers may be forked
    try:
        with pool, StoreWriter(out, spec, kind="store", streams=streams,
                               columns=sample_columns(spec, pipeline=pipeline),
                               compression=compression, attrs=attrs, pool=pool) as writer:
            outcomes = pool.ordered(process, files, spec.name)
            for outcome in _samples(_progress(outcomes, len(files), f"build {spec.name}", progress), writer,
                                    summary):
                writer.add_sample(outcome.row, outcome.joints)
            _finish(writer, spec, summary)
    finally:
        close_archives()  # the zips this process read (with one job); each worker closes its own on exit
    return summary.finish()


def _start(raw_dirs: Sequence[PathLike], out: PathLike, dataset: str, jobs: int):
    """Common start of the commands that read raw folders and zips: the files, a summary, the file attributes."""
    spec = get_dataset(dataset)
    files = discover(raw_dirs, PROCESSORS[spec.family][0])
    summary = BuildSummary(dataset=spec.name, output=str(out), files=len(files), jobs=jobs)
    attrs = {"pipeline": PIPELINE_DESCRIPTIONS[spec.family], "sources": [str(Path(d).resolve()) for d in raw_dirs]}
    return spec, files, summary, attrs


def _samples(outcomes: Iterable[FileOutcome], writer, summary: BuildSummary) -> Iterator[FileOutcome]:
    """Record every dropped outcome in the output and the summary; yield the others."""
    for outcome in outcomes:
        if outcome.reason is None:
            yield outcome
        else:
            writer.add_dropped(outcome.name, outcome.reason, outcome.detail)
            summary.record_drop(outcome.name, outcome.reason, outcome.detail)


def _finish(writer: StoreWriter, spec: DatasetSpec, summary: BuildSummary, with_splits: bool = True) -> None:
    """Summary counts, splits, commit."""
    summary.samples = len(writer)
    summary.frames = int(writer.column("n_frames").sum()) if len(writer) else 0
    if spec.family == "ntu" and all(name in writer._samples.dtypes for name in REPORT_COLUMNS):
        summary.denoising = {name: int(writer.column(name).sum()) if len(writer) else 0 for name in REPORT_COLUMNS}
    splits = None
    if with_splits:
        attributes = {bench.attribute for bench in spec.benchmarks.values()}
        splits = compute_splits(spec, {name: writer.column(name) for name in attributes})
    writer.commit(splits)


# ------------------------------------------------------------------------------------ staged commands

def extract(raw_dirs: Sequence[PathLike], out: PathLike, dataset: str, jobs: int = 1,
            progress: bool = False, compression: str = DEFAULT_COMPRESSION) -> BuildSummary:
    """Stage 1 alone: raw folders and zips to a ``raw`` file holding every body of every file."""
    from .rawfile import RawFileWriter

    spec, files, summary, attrs = _start(raw_dirs, out, dataset, jobs)
    if spec.family != "ntu":
        raise SkeldataError(f"extract is the first stage of the NTU pipeline; build {spec.name} with 'skeldata build'")
    try:
        with WorkerPool(jobs) as pool, RawFileWriter(out, spec, attrs, compression=compression) as writer:
            outcomes = pool.ordered(extract_ntu_file, files, spec.name)
            for outcome in _samples(_progress(outcomes, len(files), f"extract {spec.name}", progress), writer,
                                    summary):
                writer.add_sample(outcome.row, outcome.raw)
                summary.frames += outcome.raw.num_frames
                summary.denoising["frames_dropped"] = (summary.denoising.get("frames_dropped", 0)
                                                       + len(outcome.raw.dropped_frames))
            summary.samples = len(writer)
            writer.commit()
    finally:
        close_archives()
    return summary.finish()


def denoise_file(raw_path: PathLike, out: PathLike, progress: bool = False,
                 compression: str = DEFAULT_COMPRESSION) -> BuildSummary:
    """Stage 2 alone: a ``raw`` file to a ``denoised`` file (the selected actors, not centred)."""
    from .rawfile import open_raw

    with open_raw(raw_path) as raw_file:
        spec = raw_file.dataset
        summary = BuildSummary(dataset=spec.name, output=str(out), files=len(raw_file) + len(raw_file.dropped))
        attrs = {"pipeline": PIPELINE_DESCRIPTIONS["ntu"], "sources": [str(Path(raw_path).resolve())]}
        with StoreWriter(out, spec, kind="denoised", streams=("joint",), compression=compression,
                         attrs=attrs) as writer:
            _carry_dropped(raw_file.dropped, writer, summary)
            for row, raw in _progress(raw_file.iter_samples(), len(raw_file), f"denoise {spec.name}", progress):
                try:
                    denoised = denoise(raw)
                except SampleDropped as exc:
                    writer.add_dropped(raw.name, exc.code, exc.detail)
                    summary.record_drop(raw.name, exc.code, exc.detail)
                    continue
                row = dict(row, n_frames=len(denoised.joints), n_bodies=denoised.actors)
                row.update(report_columns(raw.raw_frames, len(raw.dropped_frames), denoised.report))
                writer.add_sample(row, to_bodies(denoised.joints, spec.max_bodies))
            _finish(writer, spec, summary, with_splits=False)
    return summary.finish()


def transform_file(denoised_path: PathLike, out: PathLike, progress: bool = False,
                   compression: str = DEFAULT_COMPRESSION, streams: Sequence[str] = DEFAULT_STREAMS) -> BuildSummary:
    """Stage 3 alone: a ``denoised`` file to the final store (centred, all streams, splits)."""
    from .store import DenoisedFile

    with DenoisedFile(denoised_path) as source:
        spec = source.dataset
        table = source.samples
        dropped = source.dropped
        summary = BuildSummary(dataset=spec.name, output=str(out), files=len(source) + len(dropped))
        attrs = {"pipeline": PIPELINE_DESCRIPTIONS["ntu"], "sources": [str(Path(denoised_path).resolve())]}
        with StoreWriter(out, spec, kind="store", streams=streams, compression=compression, attrs=attrs) as writer:
            _carry_dropped(zip(dropped["name"], dropped["reason"], dropped["detail"]), writer, summary)
            records = table.to_dict("records")
            for i in _progress(range(len(source)), len(source), f"transform {spec.name}", progress):
                row = records[i]
                actors = int(row["n_bodies"])
                joints = source.sequence(i, "joint")
                flat = np.ascontiguousarray(joints[:, :actors]).reshape(len(joints), -1)
                try:
                    centred = centre(flat)
                except SampleDropped as exc:
                    writer.add_dropped(row["name"], exc.code, exc.detail)
                    summary.record_drop(row["name"], exc.code, exc.detail)
                    continue
                writer.add_sample(row, to_bodies(centred, spec.max_bodies))
            _finish(writer, spec, summary)
    return summary.finish()


def _carry_dropped(entries: Iterable[Tuple[str, str, str]], writer, summary: BuildSummary) -> None:
    """Files an earlier stage left out stay recorded in the next stage's output."""
    outcomes = (FileOutcome(name, reason=reason, detail=detail) for name, reason, detail in entries)
    for _ in _samples(outcomes, writer, summary):
        pass
