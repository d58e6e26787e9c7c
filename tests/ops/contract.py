"""What deployment files must agree on with the code: command lines the CLI accepts, and
environment variables that name real settings. Shared by the Kubernetes and compose tests."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from stack.cli import app
from visionlog.settings import Settings

ENV_PREFIX = "VISIONLOG_"
REPO = Path(__file__).resolve().parents[2]


class CommandLineError(ValueError):
    """A command line the CLI would refuse."""


def parse_command_line(argv: Iterable[str]) -> dict[str, Any]:
    """Parse a `visionlog ...` argument list the way the CLI would, without running it, and
    return the parameters the command would receive.

    Raises CommandLineError for an unknown command, a missing argument or an option the
    command does not have.
    """
    argv = list(argv)
    args = list(argv)
    # Typer ships its own copy of click, so groups are recognised by what they can do.
    command: Any = typer.main.get_command(app)
    context = command.make_context("visionlog", [], resilient_parsing=True)
    while hasattr(command, "get_command"):
        if not args:
            raise CommandLineError(f"{context.command_path}: a subcommand is missing")
        name, args = args[0], args[1:]
        subcommand = command.get_command(context, name)
        if subcommand is None:
            raise CommandLineError(f"{context.command_path}: no command {name!r}")
        command = subcommand
        if hasattr(command, "get_command"):
            context = command.make_context(name, [], parent=context, resilient_parsing=True)
    try:
        parsed = command.make_context(name, args, parent=context)
    except Exception as error:  # click's UsageError and BadParameter, from typer's copy
        raise CommandLineError(f"visionlog {' '.join(argv)}: {error}") from error
    return dict(parsed.params)


def settings_field(variable: str) -> str:
    """The dotted settings path an environment variable sets; KeyError when it sets none."""
    if not variable.startswith(ENV_PREFIX):
        raise KeyError(f"{variable}: not a {ENV_PREFIX}* variable")
    parts = variable[len(ENV_PREFIX) :].lower().split("__")
    model: type[BaseModel] = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            raise KeyError(f"{variable}: {'.'.join([*path, part])} is not a setting")
        path.append(part)
        annotation = field.annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise KeyError(f"{variable}: {'.'.join(path)} has no nested settings")
            model = annotation
    return ".".join(path)


def settings_from_environment(environment: Mapping[str, str]) -> Settings:
    """Settings exactly as a process with this environment (and no .env file) builds them."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(environment)
    try:
        return Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        for key in environment:
            os.environ.pop(key, None)
        os.environ.update(saved)


def visionlog_variables(environment: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in environment.items() if key.startswith(ENV_PREFIX)}
