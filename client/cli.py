"""The ``sisguard`` command.

Each part of sisguard registers its own subcommands: ``models``/``predict``/``explain`` come
with the base install (the client SDK), ``serve``/``demo`` with
``sisguard[server]``, ``prune``/``evaluate``/``family`` with ``sisguard[prune]``,
``audit``/``audit-report`` with ``sisguard[audit]``. A part that is not
installed still shows its commands, which then say what to install.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

_PARTS = (
    ("sisguard.client._sdk_commands", "", ("models", "predict", "explain"), ()),
    (
        "sisguard.server.cli",
        "server",
        ("serve", "demo"),
        ("onnxruntime", "onnx", "yaml", "pydantic_settings", "prometheus_client", "grpc_reflection"),
    ),
    (
        "sisguard.server.calibrate",
        "server",
        ("calibrate",),
        ("onnxruntime", "onnx", "yaml", "pydantic_settings", "prometheus_client"),
    ),
    ("sisguard.prune.cli", "prune", ("prune", "evaluate", "family"), ("torch", "onnxruntime", "sklearn", "matplotlib")),
    ("sisguard.audit.cli", "audit", ("audit", "audit-report"), ("onnxruntime", "pyarrow", "yaml", "pydantic_settings")),
)


def _require(modules: tuple[str, ...]) -> None:
    """ImportError naming what is missing; the parts import their heavy modules lazily, so check up front."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"missing {', '.join(missing)}")


def _missing(extra: str, error: ImportError) -> object:
    package = f"sisguard[{extra}]" if extra else "sisguard"
    install = f"pip install '.[{extra}]'" if extra else "pip install ."

    def run(args: argparse.Namespace) -> int:
        print(
            f"sisguard: error: '{args.command}' needs {package} ({install} in a sisguard checkout): {error}",
            file=sys.stderr,
        )
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sisguard",
        description="Serve, explain and monitor dense/pruned ONNX model pairs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module, extra, commands, needs in _PARTS:
        try:
            _require(needs)
            importlib.import_module(module).add_subcommands(subparsers)
        except ImportError as exc:
            for name in commands:
                sub = subparsers.add_parser(name, help=f"(needs sisguard[{extra}])" if extra else None, add_help=False)
                sub.add_argument("rest", nargs=argparse.REMAINDER)
                sub.set_defaults(func=_missing(extra, exc), needs_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "needs_extra", False):  # a missing part's command takes any options
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`sisguard models | head -1`): what it wanted was written. Point
        # stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
