"""The command line is a contract: every command documents itself."""

from __future__ import annotations

import click
from click.testing import CliRunner

from cryptolake.cli import cli


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, path + (name,))


def test_every_command_has_help():
    runner = CliRunner()
    paths = list(walk(cli))
    assert ("local", "up") in paths and ("local", "env") in paths
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output
        command = cli
        for name in path:
            command = command.commands[name]
        assert command.help or command.short_help, f"{' '.join(path)} has no help text"
