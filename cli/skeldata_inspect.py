"""The inspecting commands of ``skeldata``: ``stats``, ``verify`` and ``show`` (thin click wrappers)."""
from __future__ import annotations

import json

import click

from ._common import fail, out_option, reports_skeldata_errors

_store_argument = click.argument("store", type=click.Path(exists=True, dir_okay=False, path_type=str))


@click.command()
@_store_argument
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON (keys in docs/inspect.md).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=str), metavar="FILE.png",
              help="Also draw frame-length histograms per benchmark part and samples per class "
                   "(needs matplotlib: pip install 'skeldata[plot]').")
@reports_skeldata_errors
def stats(store: str, as_json: bool, plot: str) -> None:
    """Data-set statistics of a store: samples per benchmark part and class, frame lengths, bodies,
    recording conditions, what was dropped and what denoising removed.

    \b
    Example:
      skeldata stats ntu60.h5
      skeldata stats ucla.h5 --json > ucla-stats.json
      skeldata stats ntu120.h5 --plot ntu120-stats.png
    """
    from skeldata._plotting import import_pyplot
    from skeldata.stats import compute_stats, format_report, plot_stats
    from skeldata.store import open_store
    if plot:
        import_pyplot("--plot")  # fail before any work when matplotlib is missing
    with open_store(store) as opened:
        numbers = compute_stats(opened)
    click.echo(json.dumps(numbers, indent=2) if as_json else format_report(numbers))
    if plot:
        plot_stats(numbers, plot)
        click.echo(f"skeldata stats: wrote {plot}", err=as_json)


@click.command()
@_store_argument
@reports_skeldata_errors
def verify(store: str) -> None:
    """Check that a store is intact: structure, offsets, dtypes, streams consistent with the joints,
    finite values, splits, the checksums recorded at write time and, for a full data set, the
    published counts. Exits 1 with the first problem when anything is wrong.

    Also checks the files of the staged commands (extract, denoise).

    \b
    Example:
      skeldata verify ntu60.h5
    """
    from skeldata.verify import verify as run_verify
    result = run_verify(store)
    if result.ok:
        click.echo(f"skeldata verify: {store}: OK ({result.dataset} {result.kind}, {result.samples:,} samples, "
                   f"{result.frames:,} frames)")
        for line in result.checked:
            click.echo(f"  checked  {line}")
        return
    count = len(result.problems)
    click.echo(f"skeldata verify: {store}: {count} problem(s)")
    for problem in result.problems:
        click.echo(f"  - {problem}")
    more = f" (and {count - 1} more problem(s) above)" if count > 1 else ""
    fail(f"{store} failed verification: {result.problems[0]}{more}")


@click.command()
@_store_argument
@click.argument("name")
@out_option("Image to write: .png (a strip of evenly spaced frames) or .gif (an animation).")
@click.option("--frames", default=8, show_default=True, type=int, help="Frames in a PNG strip.")
@click.option("--fps", default=30, show_default=True, type=int, help="Frames per second of a GIF.")
@reports_skeldata_errors
def show(store: str, name: str, out: str, frames: int, fps: int) -> None:
    """Draw the skeleton sequence of one sample (front view above top view, one colour per body),
    to see what the denoising kept. Needs matplotlib: pip install 'skeldata[plot]'.

    \b
    Example:
      skeldata show ntu60.h5 S001C001P001R001A050 --out punch.gif
      skeldata show ucla.h5 a01_s01_e00_v01 --out pick-up.png --frames 10
    """
    from skeldata.show import show_sample
    from skeldata.store import open_store
    with open_store(store) as opened:
        drawn = show_sample(opened, name, out, frames=frames, fps=fps)
    click.echo(f"skeldata show: {name} -> {out} ({drawn} frames)")
