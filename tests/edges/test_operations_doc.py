"""docs/operations.md is what an operator types under pressure: every `cryptolake ...` command in it must parse
with the syntax the CLI has today (arguments, options, choices), without running it."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from cryptolake.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
PLACEHOLDERS = {"<extractor>": "key_info", "<g>": "10x", "<table>": "fact_crypto_market"}


def _commands() -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`(cryptolake [^`]+)`", text)
    commands = [c for c in [*lines, *inline] if c.startswith("cryptolake ")]
    for placeholder, value in PLACEHOLDERS.items():
        commands = [c.replace(placeholder, value) for c in commands]
    return sorted(set(commands))


def parse(command: str) -> click.Context:
    """Resolve the subcommands and parse the arguments as click would, raising what the user would see."""
    args = shlex.split(command)[1:]
    group: click.Command = cli
    ctx = group.make_context("cryptolake", args, resilient_parsing=False)
    while isinstance(group, click.Group):
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args, click 9 folds it into args
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*ctx.protected_args, *ctx.args]
        if not remaining:
            break
        name, *rest = remaining
        sub = group.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no command {name!r}")
        group, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


def test_the_doc_shows_each_operation():
    commands = _commands()
    for needed in ("cryptolake status", "cryptolake backup", "cryptolake migrate", "--as-of-version",
                   "cryptolake restore", "cryptolake run --group", "cryptolake extract key_info"):
        assert any(needed in c for c in commands), needed


@pytest.mark.parametrize("command", _commands())
def test_every_documented_command_parses(command):
    parse(command)


def test_a_wrong_command_does_not_parse():
    with pytest.raises(click.UsageError):
        parse("cryptolake load --group 10x --as-of-versions 3")
    with pytest.raises(click.UsageError):
        parse("cryptolake restore")
