"""Entry point of the `sitesight` command.

Errors from bad input print one line on stderr and exit 1; usage errors exit 2 (typer/click);
``--debug`` shows the full traceback instead. Only this module configures logging.

Assembly: every ``sitesight.cli.<module>`` defines its own Typer objects (a group such as
``eval_app``, or a module-level ``app`` holding top-level commands) and never imports this module.
`COMMANDS` says which modules make each top-level command; `main` imports only those the command
line names, so ``sitesight --version``/``--help`` load no command module at all (``--help`` lists
the commands from `COMMANDS`) and ``sitesight eval coco`` loads the eval modules only.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from typer.core import TyperCommand, TyperGroup

from sitesight import __version__
from sitesight.errors import MAX_MESSAGE_CHARS, InputError, MissingExtraError, clip_line

# top-level command → (modules of sitesight.cli that build it, its group's Typer attribute in the
# first module or None for plain commands, the one-line help that `sitesight --help` shows)
COMMANDS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "demo": (("demo",), None, "Generate synthetic construction-site frames and run every sitesight capability on them."),
    "detect": (("detect",), None, "Run a detector on slices of every frame and store the raw boxes; resumes after a kill."),
    "export": (("detect",), None, "Post-process a stored run (the same path as `sweep` and `eval`) and export COCO results, CVAT parts and/or Parquet."),
    "sweep": (("sweep",), None, "Score every merge × gate × confidence combination on stored raw boxes, without the model."),
    "anomaly-parts": (("anomaly",), None, "Write synthetic screws (normal and with planted defects and masks) in the MVTec AD layout."),
    "synth": (("synth",), None, "Render synthetic site frames (workers, helmets, heads, safety ropes) and write their ground truth."),
    "report": (("report",), None, "Write one offline HTML report (metrics, plots, crops) for one or more runs."),
    "compare": (("compare",), None, "Paired bootstrap verdict between two models (ΔAP, ΔF1, Δ macro F1 or ΔAUROC with 95 % intervals)."),
    "rescore": (("det",), None, "Add predicted IoU to every stored box and rescore S = p^alpha * IoU^(1-alpha), before merging."),
    "data": (("data", "curate"), "data_app", "Read, write, validate and curate datasets."),
    "predict": (("predict", "anomaly"), "predict_app", "Apply trained models: RoI attribute heads, image classifiers, anomaly detectors."),
    "train": (("train", "anomaly", "det"), "train_app", "Train models: RoI attribute heads, classifiers, detectors, anomaly detectors."),
    "eval": (("eval", "det"), "eval_app", "Evaluate detections, classifiers and anomaly scores."),
    "mine": (("mine",), "mine_app", "Hard-sample mining by maximum discrepancy between models on stored runs (no model, no GPU)."),
}


class _LazyGroup(TyperGroup):
    """The root group: lists every command of `COMMANDS`, also those whose module is not loaded
    (a stand-in carrying the help line), so ``--help`` imports no command module."""

    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        return list(dict.fromkeys([*super().list_commands(ctx), *COMMANDS]))

    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2], short_help=COMMANDS[cmd_name][2])
        return command


app = typer.Typer(
    cls=_LazyGroup,
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


_registered: set[str] = set()


def _register(names: list[str] | None = None) -> None:
    """Import the modules of the top-level commands ``names`` (None = all) and add them to `app`."""
    for name in COMMANDS if names is None else [n for n in names if n in COMMANDS]:
        modules, group, _ = COMMANDS[name]
        loaded = [importlib.import_module(f"sitesight.cli.{m}") for m in modules]
        key = f"group:{name}" if group else f"module:{modules[0]}"
        if key in _registered:
            continue
        _registered.add(key)
        if group:
            app.add_typer(getattr(loaded[0], group), name=name)
        else:  # the module's `app` holds plain top-level commands: merged into the root
            app.add_typer(loaded[0].app)


def _command_name(args: list[str]) -> str | None:
    """The top-level command named on the command line (the first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    _terminate_as_interrupt()
    args = sys.argv[1:] if argv is None else argv
    name = _command_name(args)
    if name is not None:
        _register([name])
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


def _terminate_as_interrupt() -> None:
    """SIGTERM (``kill``, a scheduler's timeout) unwinds like Ctrl-C, so writers remove their
    temporary files and leave no partial file under a final name."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return

    def _raise(signum, frame):  # noqa: ANN001, ARG001
        raise KeyboardInterrupt

    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _raise)
    except (ValueError, OSError):
        pass


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

