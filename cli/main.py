"""The `sidetask` command: serve, analyze, train, eval, bench.

Every Settings field becomes a flag of `serve` and `analyze` (``--max-batch-tokens``); the
flag's default is the SIDETASK_* environment variable when set. The other flags of
`analyze`, `train` and `eval` read SIDETASK_<COMMAND>_<FLAG> (``engine/flags.py``).
Heavy imports happen only inside the chosen subcommand.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.flags import EnvFlagParser, command_prefix, document_env, with_env
from server.settings import Settings

if TYPE_CHECKING:
    from engine.prepared import AnalyzePayload
    from heads.answers import TaskAnswer

# Subcommands whose own (non-Settings) flags read SIDETASK_<COMMAND>_<FLAG>; bench reads
# SIDETASK_BENCH_<NAME>_<FLAG> in each benchmark's parser.
ENV_COMMANDS = ("analyze", "train", "eval")


def _flag_type(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """argparse type and extra kwargs for a Settings annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _flag_type(args[0])
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _flag_type(args[0])
    if origin is typing.Literal:
        return str, {"choices": list(args)}
    if origin is list:
        return str, {}  # comma separated, split by Settings
    if annotation is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float, str):
        return annotation, {}
    if annotation is Path:
        return str, {}
    return str, {}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; unset flags fall back to env vars, then defaults."""
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind, extra = _flag_type(field.annotation)
        env = "SIDETASK_" + name.upper()
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        help_text = f"{field.description} [env {env}; default {default!r}]"
        if kind is not None:
            extra["type"] = kind
        parser.add_argument(flag, dest=name, default=None, help=help_text, **extra)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from server.app import run_server

    return run_server(settings_from_args(args))


def _analyze(args: argparse.Namespace) -> int:
    import logging

    from engine.core import UnknownTaskError
    from engine.loading import build_engine

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    settings = settings_from_args(args)
    texts = list(args.texts) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        print("error: give at least one text (arguments or stdin)", file=sys.stderr)
        return 2
    engine = build_engine(settings)
    if args.tasks:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    else:
        tasks = engine.available_tasks  # every head and the main task
    try:
        result = engine.analyze(texts, tasks)
    except UnknownTaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = engine.backbone.info.name
    if args.json:
        print(result.payload_json(name).decode())  # the route's bytes
    else:
        _print_readable(texts, result.payload(name))
    return 0


def _print_readable(texts: Sequence[str], payload: AnalyzePayload) -> None:
    for text, answer in zip(texts, payload.results, strict=True):
        print(f"> {text[:80]}")
        for task, value in answer.items():
            print(f"  {task}: {_readable(value)}")
    usage = payload.usage
    print(f"({payload.backbone}: {usage.tokens} tokens, {usage.layers_run} layers run)")


def _readable(value: TaskAnswer) -> str:
    from heads.answers import ClassAnswer, Entity, MultiLabelAnswer

    if isinstance(value, ClassAnswer):
        return f"{value.label} ({value.score:.3f})"
    if isinstance(value, MultiLabelAnswer):
        return "; ".join(f"{x.label} ({x.score:.3f})" for x in value.labels) or "(none)"
    if isinstance(value, str):
        return value
    entities = [e for e in value if isinstance(e, Entity)]
    if len(entities) == len(value):  # entities, or none found
        return "; ".join(f"{e.text} {e.label} [{e.start}:{e.end}]" for e in entities) or "(none)"
    head = ", ".join(f"{x:.4f}" for x in value[:4])
    return f"[{head}, ...] ({len(value)} floats)"


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(
        prog="sidetask",
        description="Many lightweight task heads answering from one frozen transformer pass.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Start the HTTP server (POST /analyze).")
    add_settings_flags(serve)
    serve.set_defaults(func=_serve)

    analyze = sub.add_parser(
        "analyze", help="Answer texts from the command line, without a server."
    )
    analyze.add_argument("texts", nargs="*", help="Texts to analyze (or one per line on stdin).")
    analyze.add_argument(
        "--tasks",
        default=None,
        help="Comma separated tasks; default every loaded head and the main task.",
    )
    analyze.add_argument("--json", action="store_true", help="Print the /analyze JSON answer.")
    add_settings_flags(analyze)
    analyze.set_defaults(func=_analyze)

    from train.cli import add_eval_parser, add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)

    from benchmarks.cli import add_bench_parser

    add_bench_parser(sub)
    for command in ENV_COMMANDS:
        document_env(
            parser.subcommands()[command], command_prefix(command), skip=_settings_flags(command)
        )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with unset flags of analyze/train/eval from SIDETASK_<COMMAND>_*."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    if command in ENV_COMMANDS:
        sub = parser.subcommands()[command]
        words = with_env(sub, command_prefix(command), words, skip=_settings_flags(command))
    return parser.parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.func(args) or 0)


def _settings_flags(command: str) -> Iterable[str]:
    """The flags that are Settings (read as SIDETASK_<FIELD> by pydantic-settings)."""
    return Settings.model_fields if command in ("serve", "analyze") else ()


if __name__ == "__main__":
    raise SystemExit(main())
