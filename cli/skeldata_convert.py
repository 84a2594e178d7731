"""``skeldata import``: bring an SGN-family npz or a pyskl / mmaction2 pickle into a store."""
from __future__ import annotations

from typing import Optional

import click

from skeldata._h5 import COMPRESSION, DEFAULT_COMPRESSION
from skeldata.datasets import DATASETS

from ._common import fail, out_option, reports_skeldata_errors

FORMATS = ("sgn-npz", "pyskl")


def check_benchmark_option(fmt: str, benchmark: Optional[str]) -> None:
    """``--benchmark`` is required with sgn-npz (the file holds one benchmark and does not say which)
    and meaningless with pyskl (the file names its benchmarks in ``split``)."""
    if fmt in ("sgn-npz", "stgcn-npy") and benchmark is None:
        fail(f"--benchmark is required with --format {fmt}: the files hold one benchmark "
             "(ntu60: xsub or xview; ntu120: xsub or xset)")
    if fmt == "pyskl" and benchmark is not None:
        fail("--benchmark is for --format sgn-npz only (and stgcn-npy): a pyskl file holds every benchmark in its 'split'")


@click.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="sgn-npz: an NTU60_CS.npz-style file of the SGN-family scripts (CTR-GCN, CSRE, ...); "
                   "pyskl: a pyskl / mmaction2 annotation pickle.")
@click.option("--dataset", required=True, type=click.Choice(list(DATASETS)),
              help="The data set the file holds (sgn-npz: ntu60 or ntu120).")
@click.option("--benchmark", default=None,
              help="sgn-npz only, required there: the benchmark the npz holds (ntu60 xsub|xview, "
                   "ntu120 xsub|xset).")
@out_option("Store to write (replaced atomically when the import succeeds).")
@click.option("--compression", default=DEFAULT_COMPRESSION, show_default=True, type=click.Choice(list(COMPRESSION)),
              help="HDF5 compression of the store's frame data.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@reports_skeldata_errors
def import_command(source: str, fmt: str, dataset: str, benchmark: Optional[str], out: str,
                   compression: str, quiet: bool) -> None:
    """Read a file in a format people already have into a store.

    sgn-npz: the file holds one benchmark and no sample names. The store holds its train samples,
    then its test samples, named 1_train_000000, ..., 2_test_000000, ...; frame counts are found by
    stripping the zero padding, bodies by the second slot being zero (or, for ntu120, a copy of
    the first). Read in blocks of rows: memory stays small whatever the file's size.

    pyskl: names from frame_dir (the store is in name order), benchmarks from 'split' (<bench>_val
    is the test part), and the setup, camera, performer and replication from NTU names (action,
    subject, take, view from NW-UCLA names). The pickle is loaded whole.

    \b
    Example:
      skeldata import NTU60_CS.npz --format sgn-npz --dataset ntu60 --benchmark xsub --out ntu60-xsub.h5
      skeldata import ntu120_3danno.pkl --format pyskl --dataset ntu120 --out ntu120.h5
    """
    from tqdm import tqdm

    from skeldata.convert.importers import import_pyskl, import_sgn_npz

    check_benchmark_option(fmt, benchmark)
    with tqdm(desc=f"import {fmt}", unit="sample", disable=quiet, leave=False, dynamic_ncols=True,
              delay=1) as bar:
        if fmt == "sgn-npz":
            summary = import_sgn_npz(source, dataset, benchmark, out, compression=compression, progress=bar.update)
        else:
            summary = import_pyskl(source, dataset, out, compression=compression, progress=bar.update)
    lines = [f"skeldata import: {summary.source} ({summary.format}) -> {summary.output}",
             f"  samples        {summary.samples:>9,}   ({summary.frames:,} frames, {summary.dataset})"]
    for bench, parts in summary.splits.items():
        lines.append(f"  {bench:<14} train {parts['train']:,}, test {parts['test']:,}")
    lines.append(f"  time           {summary.seconds:>9.1f} s")
    click.echo("\n".join(lines))
