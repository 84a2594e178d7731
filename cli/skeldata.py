"""The ``skeldata`` command: thin click wrappers that parse, call the library and report."""
from __future__ import annotations

import sys

import click

from skeldata import __version__
from skeldata._h5 import COMPRESSION, DEFAULT_COMPRESSION
from skeldata.datasets import DATASETS
from skeldata.errors import DROP_LABELS
from skeldata.pipeline.streams import STREAMS

from ._common import EXIT_FAILED, out_option, reports_skeldata_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="skeldata")
def main() -> None:
    """Skeleton data sets (NTU RGB+D 60/120, NW-UCLA) to one chunked HDF5 store per data set.

    \b
    Example:
      skeldata build --dataset ntu60 --raw nturgb+d_skeletons --out ntu60.h5 --jobs 2
      skeldata export ntu60.h5 --format sgn-npz --benchmark xsub --out NTU60_CS.npz
    """


_dataset_option = click.option("--dataset", required=True, type=click.Choice(list(DATASETS)),
                               help="Which data set the files belong to (names outside it are left out). "
                                    "ucla: the NW-UCLA all_sqe JSON files.")
_raw_option = click.option("--raw", "raw_dirs", required=True, multiple=True, type=click.Path(path_type=str),
                           help="Folder of .skeleton files (searched recursively), or a zip file of them as "
                                "downloaded (read in place, not unpacked); repeat for several, folders and "
                                "zips mixed (NTU120 ships as two).")
_jobs_option = click.option("--jobs", "-j", default=1, show_default=True, type=int,
                            help="Workers that parse files in parallel (-1: one per CPU): threads for the SGN "
                                 "pipeline with the compiled reader, processes otherwise.")
_quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def _parse_streams(ctx, param, value: str):
    streams = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in streams if s not in STREAMS]
    if unknown or "joint" not in streams:
        raise click.BadParameter(f"give a comma-separated subset of {','.join(STREAMS)} that includes joint; got {value!r}")
    return streams


_streams_option = click.option("--streams", default="joint", show_default=True, callback=_parse_streams,
                               help="Streams to store as datasets, e.g. joint,bone,motion for all three. The "
                                    "others are still served by store.sequence, computed from the joints on "
                                    "read (same values).")
_compression_option = click.option("--compression", default=DEFAULT_COMPRESSION, show_default=True,
                                   type=click.Choice(list(COMPRESSION)),
                                   help="HDF5 compression of the frame data (gzip: smaller, slower, "
                                        "readable by every HDF5 tool).")


@main.command()
@_dataset_option
@_raw_option
@out_option("Store to write (replaced atomically when the build succeeds).")
@_jobs_option
@click.option("--allow-errors", is_flag=True,
              help="Exit 0 even when some files could not be parsed (they are still listed).")
@_quiet_option
@_compression_option
@_streams_option
@click.option("--pipeline", default="sgn", show_default=True, type=click.Choice(["sgn", "stgcn"]),
              help="NTU only. sgn: the SGN-family scripts (CTR-GCN, CSRE, ...; denoised actors, frames "
                   "without a body removed). stgcn: the ST-GCN lineage, 2s-AGCN ntu_gendata.py + "
                   "preprocess.py / MS-G3D ntu120_gendata.py (two most active body slots, 300 frames "
                   "with repeated tail, centred per frame, rotated); export it with --format stgcn-npy. "
                   "Example: skeldata build --dataset ntu60 --raw DIR --pipeline stgcn --out ntu60-stgcn.h5")
@reports_skeldata_errors
def build(dataset: str, raw_dirs, out: str, jobs: int, allow_errors: bool, quiet: bool, compression: str,
          streams, pipeline: str) -> None:
    """Raw .skeleton files to a store: extract, denoise and transform in one pass.

    The result is numerically identical to the published SGN-family scripts. Files whose frames
    hold no skeleton are left out and recorded; so are malformed files, which also make the
    command exit with status 1 unless --allow-errors is given.

    For NW-UCLA (--dataset ucla, --raw the all_sqe folder or a zip of it) the joints are stored as
    they are.

    --pipeline stgcn stores what the ST-GCN-lineage scripts (2s-AGCN, MS-G3D) make of each file
    instead, 300 frames per sample, byte for byte; all-empty files are left out all the same.

    A zip file given to --raw is read in place: its *.skeleton (or *.json) members, in any folder
    of the zip, are read by the workers straight from the archive. A damaged member is left out
    and recorded like a malformed file.

    \b
    Example:
      skeldata build --dataset ntu60 --raw nturgbd_skeletons_s001_to_s017.zip --out ntu60.h5 --jobs -1
      skeldata build --dataset ntu120 --raw nturgb+d_skeletons --raw nturgb+d_skeletons120 \\
                     --out ntu120.h5 --jobs -1
      skeldata build --dataset ucla --raw NW-UCLA/all_sqe --out ucla.h5
      skeldata build --dataset ntu60 --raw nturgb+d_skeletons --pipeline stgcn --out ntu60-stgcn.h5
    """
    from skeldata.build import build as run_build
    summary = run_build(raw_dirs, out, dataset, jobs=jobs, progress=not quiet, compression=compression,
                        streams=streams, pipeline=pipeline)
    _print_summary("build", summary)
    _exit_for_errors(summary, allow_errors)


@main.command()
@_dataset_option
@_raw_option
@out_option("File of extracted bodies to write (kind 'raw').")
@_jobs_option
@click.option("--allow-errors", is_flag=True, help="Exit 0 even when some files could not be parsed.")
@_quiet_option
@_compression_option
@reports_skeldata_errors
def extract(dataset: str, raw_dirs, out: str, jobs: int, allow_errors: bool, quiet: bool, compression: str) -> None:
    """Stage 1: parse the raw files (folders or zip files) and group each file's bodies by tracking id.

    \b
    Example:
      skeldata extract --dataset ntu60 --raw nturgb+d_skeletons --out ntu60-raw.h5
      skeldata extract --dataset ntu60 --raw nturgbd_skeletons_s001_to_s017.zip --out ntu60-raw.h5
      skeldata denoise ntu60-raw.h5 --out ntu60-denoised.h5
      skeldata transform ntu60-denoised.h5 --out ntu60.h5
    """
    from skeldata.build import extract as run_extract
    summary = run_extract(raw_dirs, out, dataset, jobs=jobs, progress=not quiet, compression=compression)
    _print_summary("extract", summary)
    _exit_for_errors(summary, allow_errors)


@main.command()
@click.argument("raw_file", type=click.Path(exists=True, dir_okay=False, path_type=str))
@out_option("File of denoised samples to write (kind 'denoised').")
@_quiet_option
@_compression_option
@reports_skeldata_errors
def denoise(raw_file: str, out: str, quiet: bool, compression: str) -> None:
    """Stage 2: choose up to two actors per sample (length, spread and motion rules).

    \b
    Example:
      skeldata denoise ntu60-raw.h5 --out ntu60-denoised.h5
    """
    from skeldata.build import denoise_file
    _print_summary("denoise", denoise_file(raw_file, out, progress=not quiet, compression=compression))


@main.command()
@click.argument("denoised_file", type=click.Path(exists=True, dir_okay=False, path_type=str))
@out_option("Store to write.")
@_quiet_option
@_compression_option
@_streams_option
@reports_skeldata_errors
def transform(denoised_file: str, out: str, quiet: bool, compression: str, streams) -> None:
    """Stage 3: centre every sample, derive the bone and motion streams, add the benchmark splits.

    \b
    Example:
      skeldata transform ntu60-denoised.h5 --out ntu60.h5
    """
    from skeldata.build import transform_file
    _print_summary("transform", transform_file(denoised_file, out, progress=not quiet, compression=compression,
                                               streams=streams))


@main.command()
@click.argument("store", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--format", "fmt", required=True, type=click.Choice(["sgn-npz", "pyskl", "stgcn-npy"]),
              help="sgn-npz: the NTU60_CS.npz-style file of the SGN-family scripts (CTR-GCN, CSRE, ...); "
                   "pyskl: the pyskl / mmaction2 annotation pickle, every benchmark of the store; "
                   "stgcn-npy (a store built with --pipeline stgcn): the folder 2s-AGCN / MS-G3D "
                   "ntu_gendata writes, e.g. --format stgcn-npy --benchmark xsub --out ntu60/xsub.")
@click.option("--benchmark", default=None,
              help="Benchmark to export, sgn-npz and stgcn-npy only and required there: ntu60 xsub|xview, "
                   "ntu120 xsub|xset.")
@out_option("File to write (stgcn-npy: the folder to write the four files into).")
@reports_skeldata_errors
def export(store: str, fmt: str, benchmark: str, out: str) -> None:
    """Write a store in a format existing training code reads.

    pyskl: split names are <bench>_train and <bench>_val (val is the store's test part); keypoint
    float32 (M, T, V, 3) with M the sample's bodies.

    stgcn-npy: writes train_data_joint.npy, val_data_joint.npy (float32 (N, 3, 300, 25, 2)),
    train_label.pkl and val_label.pkl ((names, labels)) into the --out folder, samples in name order
    (as MS-G3D; 2s-AGCN lists files in os.listdir order). The names are file names such as
    S001C001P001R001A001.skeleton: MS-G3D's NTU120 script stores full raw paths, which no export
    can know.

    \b
    Example:
      skeldata export ntu60.h5 --format sgn-npz --benchmark xsub --out NTU60_CS.npz
      skeldata export ntu60.h5 --format pyskl --out ntu60_3danno.pkl
      skeldata export ntu60-stgcn.h5 --format stgcn-npy --benchmark xsub --out data/ntu/xsub
    """
    from skeldata.convert.export import export_pyskl, export_sgn_npz, export_stgcn_npy
    from skeldata.store import open_store

    from .skeldata_convert import check_benchmark_option
    check_benchmark_option(fmt, benchmark)
    with open_store(store) as opened:
        if fmt == "stgcn-npy":
            sizes = export_stgcn_npy(opened, benchmark, out)
            click.echo(f"skeldata export: {out}: {benchmark} train {sizes['train']:,}, val {sizes['val']:,} samples")
            return
        if fmt == "pyskl":
            sizes = export_pyskl(opened, out)
            splits = ", ".join(f"{key} {count:,}" for key, count in sizes.items()) or "no split"
            click.echo(f"skeldata export: {out}: {len(opened):,} samples; {splits}")
            return
        n_train, n_test = export_sgn_npz(opened, benchmark, out)
    click.echo(f"skeldata export: {out}: {benchmark} train {n_train:,}, test {n_test:,} samples")


# -------------------------------------------------------------------------------------------- output



def _print_summary(command: str, summary) -> None:
    """The one-screen summary: what was written, what was left out and why, the time."""
    lines = [f"skeldata {command}: {summary.dataset} -> {summary.output}",
             f"  files          {summary.files:>9,}",
             f"  samples        {summary.samples:>9,}   ({summary.frames:,} frames)"]
    left_out = sum(summary.dropped.values())
    lines.append(f"  left out       {left_out:>9,}")
    for reason, count in sorted(summary.dropped.items(), key=lambda item: -item[1]):
        names = summary.dropped_names[reason]
        example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        lines.append(f"    {DROP_LABELS.get(reason, reason):<34} {count:>6,}   {example}")
    if summary.denoising:
        d = summary.denoising
        parts = [f"{label} {d[key]:,}" for key, label in (
            ("frames_dropped", "frames without a body"), ("removed_by_length", "bodies removed by length"),
            ("removed_by_spread", "by spread"), ("unassigned", "bodies unassigned"),
            ("rows_removed", "zero-sum frames removed")) if key in d]
        lines.append("  denoising      " + "; ".join(parts))
    rate = summary.files / summary.seconds if summary.seconds else 0.0
    lines.append(f"  time           {summary.seconds:>9.1f} s   ({rate:,.0f} files/s)")
    click.echo("\n".join(lines))
    for error in summary.errors[:20]:
        click.echo(f"skeldata: error: {error}", err=True)
    if len(summary.errors) > 20:
        click.echo(f"skeldata: ... and {len(summary.errors) - 20} more malformed files "
                   f"(all are listed in the output's 'dropped' table)", err=True)


def _exit_for_errors(summary, allow_errors: bool) -> None:
    if summary.errors and not allow_errors:
        click.echo(f"skeldata: {len(summary.errors)} file(s) could not be parsed; "
                   f"the output was written without them (use --allow-errors to exit 0)", err=True)
        sys.exit(EXIT_FAILED)


from .skeldata_convert import import_command  # noqa: E402  (the command lives in its own module)

main.add_command(import_command)

from .skeldata_inspect import show, stats, verify  # noqa: E402  (the inspecting commands, in their own module)

main.add_command(stats)
main.add_command(verify)
main.add_command(show)

if __name__ == "__main__":  # pragma: no cover
    main()
