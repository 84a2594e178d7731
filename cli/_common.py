"""Helpers shared by the command-line modules: error reporting and common options."""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Optional, Tuple, Type

import click

EXIT_FAILED = 1


def fail(message: str) -> None:
    """Print ``message`` as a one-line error on stderr and exit with status 1."""
    click.echo(f"skeldata: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line. An error raised in a DataLoader worker comes back with the
    worker's traceback in its message; its last line holds the original message. A ``KeyError``'s
    message is its argument (not its quoted ``repr``)."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        head, separator, message = last.partition(": ")
        text = message if separator and " " not in head else last
    return text


def _input_errors() -> Tuple[Type[BaseException], ...]:
    """The errors a user's input causes: the two packages' own and the system's. csre_models's base is
    taken only when csre_models is loaded (none of its errors can be raised otherwise), so that the
    ``skeldata`` command never imports torch."""
    from skeldata.errors import SkeldataError
    models = sys.modules.get("csre_models.errors")
    own = (SkeldataError,) if models is None else (SkeldataError, models.CSREModelsError)
    return own + (FloatingPointError, OSError)


def reports_errors(program: str, also: Tuple[Type[BaseException], ...] = ()) -> Callable:
    """A console script's command that turns the errors a user can cause (:func:`_input_errors`, and
    ``also``) into ``<program>: error: <reason>`` on stderr and exit status :data:`EXIT_FAILED`.
    A closed standard output (``skeldata stats x.h5 | head``) ends the command quietly, as Unix tools do."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(EXIT_FAILED)
            except Exception as exc:
                if not isinstance(exc, _input_errors() + also):
                    raise
                click.echo(f"{program}: error: {one_line(exc)}", err=True)
                sys.exit(EXIT_FAILED)

        return wrapper

    return decorate


#: skeldata's commands also report a ``KeyError`` or ``ValueError`` as one line: the library raises them
#: for an unknown data set, benchmark, stream or compression.
reports_skeldata_errors = reports_errors("skeldata", also=(KeyError, ValueError))


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
