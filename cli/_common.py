"""Helpers shared by the command-line modules: error reporting and common options."""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Optional

import click

EXIT_FAILED = 1


def fail(message: str) -> None:
    """Print ``message`` as a one-line error on stderr and exit with status 1."""
    click.echo(f"skeldata: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def reports_errors(fn: Callable) -> Callable:
    """Turn the library's errors on bad input into a one-line message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from skeldata.errors import SkeldataError
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            # The reader went away (`skeldata stats x.h5 | head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
        except (SkeldataError, OSError, KeyError, ValueError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            fail(str(message))

    return wrapper


class OutputExists(FileExistsError):
    """An output path that exists and may not be replaced (no ``--overwrite``)."""


def refuse_existing(*paths, overwrite: bool) -> None:
    """Raise :class:`OutputExists` for the first of ``paths`` (``None`` skipped) that exists, unless
    ``overwrite``: no command replaces a file the user did not ask it to."""
    if overwrite:
        return
    for path in paths:
        if path is not None and os.path.lexists(path):
            kind = "folder" if os.path.isdir(path) else "file"
            raise OutputExists(f"{path} exists ({kind}); give --overwrite to replace it, or choose another path")


def report_stale_temporaries(out: Optional[str], program: str = "skeldata") -> None:
    """Remove the temporary files that killed runs left for ``out`` and say so."""
    from skeldata.output import remove_stale_temporaries

    if out is None:
        return
    removed = remove_stale_temporaries(out)
    if removed:
        click.echo(f"{program}: removed {len(removed)} temporary file(s) that a killed run left for {out}: "
                   f"{', '.join(path.name for path in removed)}", err=True)


def out_option(help_text: str):
    """The ``--out FILE`` option every writing command has, with ``--overwrite``: an existing ``--out`` is
    refused unless ``--overwrite`` is given (and then replaced only once the new file is complete, as every
    writer here writes to a temporary name first)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, overwrite: bool = False, **kwargs):
            try:
                refuse_existing(kwargs.get("out"), overwrite=overwrite)
            except OutputExists as exc:
                fail(str(exc))
            report_stale_temporaries(kwargs.get("out"))
            return fn(*args, **kwargs)

        wrapper = click.option("--overwrite", is_flag=True,
                               help="Replace --out if it exists (by default an existing path is refused).")(wrapper)
        return click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
                            help=help_text)(wrapper)

    return decorate
