"""What deployment files must agree on with the code: command lines the CLI accepts, and
environment variables that name real settings. Shared by the Kubernetes and compose tests."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from processors.bindings import COMPLETION_KIND
from processors.completion.worker import CompletionWorker
from processors.worker import build_worker
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


@dataclass(frozen=True)
class Subscription:
    """What the faust app of a worker kind really uses: its consumer group, the topics its
    agents read and the changelog topics of its tables."""

    group: str
    topics: frozenset[str]
    changelogs: frozenset[str]


def worker_subscription(kind: str, settings: Settings) -> Subscription:
    """Builds the worker's faust app as `visionlog processors worker KIND` does, and reads
    it. Nothing connects until an app starts; the settings need a writable state_dir."""
    if kind == COMPLETION_KIND:
        faust_app = CompletionWorker(settings).app
    else:
        faust_app = build_worker(kind, settings).app
    topics = {topic for agent in faust_app.agents.values() for topic in agent.channel.topics}
    changelogs = {table.changelog_topic.get_topic_name() for table in faust_app.tables.values()}
    return Subscription(str(faust_app.conf.id), frozenset(topics), frozenset(changelogs))
