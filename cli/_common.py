"""Helpers shared by the command-line modules: error reporting and common options."""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable

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


def out_option(help_text: str):
    """The ``--out FILE`` option every writing command has."""
    return click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
                        help=help_text)
