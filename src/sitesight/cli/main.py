"""Entry point of the `sitesight` command.

Errors from bad input print one line on stderr and exit 1; usage errors exit 2 (typer/click);
``--debug`` shows the full traceback instead. Only this module configures logging.
"""

from __future__ import annotations

import logging
import sys

import typer

from sitesight import __version__
from sitesight.errors import MAX_MESSAGE_CHARS, InputError, MissingExtraError, clip_line

app = typer.Typer(
    name="sitesight",
    help="Build and audit vision models for construction-site safety and industrial inspection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sitesight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
) -> None:
    """sitesight: formats, sliced detection, evaluation, reports and hard-sample mining."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    # Command groups are added here, one line each, as they land.
    from sitesight.cli import demo  # noqa: F401, I001  (registers `sitesight demo`; one line per group, unsorted on purpose)
    from sitesight.cli import data  # noqa: F401  (registers `sitesight data convert|validate|stats`)
    from sitesight.cli import detect, sweep  # noqa: F401  (registers `sitesight detect|export|sweep`)
    from sitesight.cli import curate  # noqa: F401  (registers `sitesight data filter|split|mix|tile|dedup|sample|package`)
    from sitesight.cli import predict, train  # noqa: F401  (registers `sitesight train roi|cls`, `sitesight predict roi|cls`)
    from sitesight.cli import anomaly  # noqa: F401  (registers `sitesight train|predict anomaly`, `sitesight anomaly-parts`)
    from sitesight.cli import synth  # noqa: F401  (registers `sitesight synth`)
    from sitesight.cli import eval as _eval  # noqa: F401  (registers `sitesight eval coco|det|cls|anomaly`)
    from sitesight.cli import mine  # noqa: F401  (registers `sitesight mine`, `sitesight mine verdict`)
    from sitesight.cli import report  # noqa: F401  (registers `sitesight report`)
    from sitesight.cli import compare  # noqa: F401  (registers `sitesight compare`)
    from sitesight.cli import det  # noqa: F401  (registers `sitesight train det|iou-head`, `sitesight rescore`, `sitesight eval iou-aware`)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # With standalone_mode=False, typer.Exit(code) comes back as the return value.
        result = app(args=args, standalone_mode=False)
        if isinstance(result, int):
            return result
    except SystemExit as exc:  # typer.Exit inside standalone_mode=False
        return int(exc.code or 0)
    except (InputError, MissingExtraError, OSError) as exc:
        if debug:
            raise
        typer.echo(f"error: {error_line(exc)}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # usage errors (typer vendors click, so match by behaviour) and the unexpected
        if type(exc).__name__ == "Abort":
            typer.echo("aborted", err=True)
            return 1
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):
            exc.show()
            return int(exc.exit_code)
        if debug:
            raise
        typer.echo(f"error: {error_line(exc)} (unexpected; rerun with --debug for the traceback)", err=True)
        return 1
    return 0


def error_line(exc: BaseException) -> str:
    """One line for the user: the file and place first when known, never the exception's class name,
    at most `MAX_MESSAGE_CHARS` characters."""
    if isinstance(exc, OSError) and not isinstance(exc, InputError) and exc.filename is not None:
        reason = (exc.strerror or str(exc)).lower()
        text = f"{exc.filename}: {reason}"
    else:
        text = str(exc) or "failed"
        if not isinstance(exc, (InputError, MissingExtraError)):
            text = _strip_class_names(text)
    return clip_line(text, MAX_MESSAGE_CHARS)


def _strip_class_names(text: str) -> str:
    # Library messages sometimes start with their own class name ("ArrowInvalid: ..."); drop it.
    head, sep, tail = text.partition(": ")
    if sep and head.isidentifier() and head[:1].isupper() and (head.endswith(("Error", "Exception", "Invalid"))):
        return tail
    return text

