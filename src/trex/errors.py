"""User-facing errors: the one place where an exception becomes one line, and the exit codes of every command.

Exit codes (every ``trex`` command):

====  ==========================================================================================================
0     done
1     done in part: the command ran and wrote its results, but some of its work failed (``trex eval``: a task
      whose data is broken; the others are scored) — each failure is one line
2     a user error: a bad option, input file, recipe, adapter or model folder, or an output path that cannot be
      written — one line ``error: ...`` naming the file, field or value; nothing was lost
70    a bug in trex: the traceback is printed (please report it)
130   interrupted (Ctrl-C); finished checkpoints and evaluated tasks are kept (``--resume``)
====  ==========================================================================================================

A user error is any :class:`UserError` (``trex.data.DataError`` and ``trex.eval.EvalError`` are user errors too),
a ``ValueError`` raised by trex's own checks, an ``OSError`` (missing, read-only, full or blocked paths), an
error of the model hub or of transformers loading a model, and a damaged ``.safetensors`` file. A ``KeyError`` or
``TypeError`` is a bug unless it was raised while reading a file (``reading(path)`` names the file), because
anywhere else it means trex's own code is wrong.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USER_ERROR = 2
EXIT_BUG = 70
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


class UserError(ValueError):
    """Bad input the user can fix; the message names the file, field or option and the value."""


def one_line(text: str) -> str:
    """Messages of other libraries span lines; a user error is one."""
    return " ".join(str(text).split())


def shorten(text: str, limit: int = 300) -> str:
    """Another library's message cut to a readable length (transformers lists hundreds of model types)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Errors raised while reading ``path`` become a UserError that names it (damaged or mistyped files); trex's
    own ValueErrors pass unchanged (they say what is wrong already)."""
    try:
        yield
    except UserError:
        raise
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from err
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise UserError(f"{path}: damaged {what}, not JSON ({err.msg} at {where})") from err
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else shorten(one_line(str(err)))
        raise UserError(f"{path}: damaged or mistyped {what} ({detail})") from err
    except Exception as err:
        if _is_safetensors_error(err):
            raise UserError(f"{path}: damaged safetensors file ({one_line(str(err))})") from err
        raise


def _is_safetensors_error(err: BaseException) -> bool:
    return type(err).__name__ == "SafetensorError"


def _from_library(err: BaseException, *prefixes: str) -> bool:
    return any(cls.__module__.startswith(prefixes) for cls in type(err).__mro__)


def user_message(err: BaseException) -> str | None:
    """The one line for an error the user can fix, or None for a bug (which keeps its traceback)."""
    if isinstance(err, UnicodeDecodeError):
        return f"input is not UTF-8 text ({err.reason} at byte {err.start})"
    if isinstance(err, OSError):
        if err.filename is not None and err.strerror:
            second = f" -> {err.filename2}" if err.filename2 else ""
            return f"{err.filename}{second}: {err.strerror}"
        return one_line(str(err)) or type(err).__name__
    if isinstance(err, ValueError):  # UserError, DataError, EvalError and trex's own checks
        return one_line(str(err)) or type(err).__name__
    if _is_safetensors_error(err):
        return f"damaged safetensors file ({shorten(one_line(str(err)))})"
    if _from_library(err, "huggingface_hub", "httpx", "requests"):
        return f"model hub: {shorten(one_line(str(err))) or type(err).__name__}"
    return None


def print_error(message: str) -> None:
    import typer

    typer.echo(typer.style("error:", fg="red", bold=True) + " " + message, err=True)


def cli_command(function: F) -> F:
    """Run a command with the exit-code convention above: user errors one line (exit 2), bugs a traceback (70)."""
    import click
    import typer

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `trex ... | head`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        except KeyboardInterrupt:
            print_error("interrupted; finished work is kept (re-run with --resume to continue)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as err:
            message = user_message(err)
            if message is None:
                traceback.print_exc(file=sys.stderr)
                print_error(f"this is a bug in trex ({type(err).__name__}); please report it with the traceback above")
                raise typer.Exit(EXIT_BUG) from err
            print_error(message)
            raise typer.Exit(EXIT_USER_ERROR) from err

    wrapper.__trex_cli_command__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def check_range(name: str, value: int | float | None, minimum: int | float, allow_none: bool = True) -> None:
    """An option's value is at least ``minimum`` (``None`` when allowed): checked before any work starts."""
    if value is None:
        if allow_none:
            return
        raise UserError(f"{name} must be given")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {value!r}")
