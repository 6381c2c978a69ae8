"""SIDETASK_* environment variables for the flags that are not server Settings.

`serve` and `analyze` read their Settings from the environment through pydantic-settings.
The other commands' flags (``sidetask train --lr``, ``sidetask bench serve --rounds``) read
``SIDETASK_<COMMAND>_<FLAG>`` (``SIDETASK_TRAIN_LR``, ``SIDETASK_BENCH_SERVE_ROUNDS``): the
command in the name keeps them apart from the server's settings and from each other. A
flag on the command line wins over its variable. The values go through argparse like
typed flags, so a bad one is refused with the flag's own message; lists are shell words
(``SIDETASK_TRAIN_TRAIN="a.tsv b.tsv"``), switches take true/false (1/0, yes/no, on/off).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from typing import Any

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
ENV_MARK = "[env "


def command_prefix(*words: str) -> str:
    """``("bench", "head_dtype")`` -> ``SIDETASK_BENCH_HEAD_DTYPE_``."""
    return "SIDETASK_" + "".join(w.replace("-", "_").upper() + "_" for w in words)


class EnvFlagParser(argparse.ArgumentParser):
    """An ArgumentParser that remembers its flags and subcommands.

    argparse keeps the list of a parser's actions private; this subclass records each action
    as ``add_argument`` returns it (and the subcommand table as ``add_subparsers`` returns
    it), so the environment can be read for exactly the declared flags through public API
    only. Subcommand parsers are of this class too (argparse builds them with the parent's).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flag_actions: list[argparse.Action] = []
        self.subcommand_action: argparse.Action | None = None
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flag_actions.append(action)
        return action

    def add_subparsers(self, **kwargs: Any) -> Any:
        self.subcommand_action = super().add_subparsers(**kwargs)
        return self.subcommand_action

    def subcommands(self) -> dict[str, EnvFlagParser]:
        """Subcommand name -> its parser (empty without subcommands)."""
        if self.subcommand_action is None or self.subcommand_action.choices is None:
            return {}
        return dict(self.subcommand_action.choices)  # type: ignore[arg-type]


def _long_flag(action: argparse.Action) -> str | None:
    longs = [s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-")]
    if not longs or action.default == argparse.SUPPRESS:  # --help, --version
        return None
    return max(longs, key=len)


def _flag_actions(
    parser: EnvFlagParser, skip: Iterable[str] = ()
) -> list[tuple[argparse.Action, str]]:
    if not isinstance(parser, EnvFlagParser):
        raise TypeError("build the parser with engine.flags.EnvFlagParser to read flags from env")
    skipped = set(skip)
    out = []
    for action in parser.flag_actions:
        flag = _long_flag(action)
        if flag is not None and action.dest not in skipped:
            out.append((action, flag))
    return out


def env_name(prefix: str, flag: str) -> str:
    return prefix + flag.removeprefix("--").replace("-", "_").upper()


def document_env(parser: EnvFlagParser, prefix: str, skip: Iterable[str] = ()) -> None:
    """Name each flag's variable in its --help text."""
    for action, flag in _flag_actions(parser, skip):
        if action.help == argparse.SUPPRESS or ENV_MARK in (action.help or ""):
            continue
        note = f"{ENV_MARK}{env_name(prefix, flag)}]"
        action.help = f"{action.help} {note}" if action.help else note


def _given(action: argparse.Action, argv: Sequence[str]) -> bool:
    """Whether ``argv`` sets this flag (also as --flag=value or an unambiguous prefix)."""
    names = [s for s in action.option_strings if s.startswith("--")]
    for token in argv:
        if token == "--":
            break
        head = token.split("=", 1)[0]
        if len(head) > 2 and head.startswith("--") and any(n.startswith(head) for n in names):
            return True
    return False


def _switch(raw: str, name: str, parser: EnvFlagParser) -> bool:
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    parser.error(f"{name}={raw!r}: expected true or false (1/0, yes/no, on/off)")


def env_tokens(
    parser: EnvFlagParser,
    prefix: str,
    argv: Sequence[str],
    skip: Iterable[str] = (),
) -> list[str]:
    """Command-line words for every flag that ``argv`` leaves unset and the environment sets."""
    tokens: list[str] = []
    for action, flag in _flag_actions(parser, skip):
        name = env_name(prefix, flag)
        raw = os.environ.get(name)
        if raw is None or _given(action, argv):
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            tokens.append(flag if _switch(raw, name, parser) else "--no-" + flag[2:])
        elif action.nargs == 0:  # store_true / store_const
            if _switch(raw, name, parser):
                tokens.append(flag)
        elif action.nargs in ("+", "*") or isinstance(action.nargs, int):
            tokens += [flag, *shlex.split(raw)]
        else:
            tokens.append(f"{flag}={raw}")
    return tokens


def parse_with_env(
    parser: EnvFlagParser, argv: Sequence[str] | None, prefix: str
) -> argparse.Namespace:
    """``parser.parse_args`` with unset flags taken from ``<prefix><FLAG>`` variables."""
    words = list(sys.argv[1:] if argv is None else argv)
    document_env(parser, prefix)
    return parser.parse_args(with_env(parser, prefix, words))


def with_env(
    parser: EnvFlagParser,
    prefix: str,
    words: Sequence[str],
    skip: Iterable[str] = (),
) -> list[str]:
    """``words`` with the environment's flags added (before a ``--``, if there is one)."""
    words = list(words)
    end = words.index("--") if "--" in words else len(words)
    extra = env_tokens(parser, prefix, words[:end], skip=skip)
    return words[:end] + extra + words[end:]
