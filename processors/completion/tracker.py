"""When is a media item done? Bookkeeping over the work reports, free of Kafka.

Every stage that takes an input event publishes one `EventProcessed` for it, naming the
events it derived. Which stages take an event type is fixed by the bindings
(`processors.bindings.reporting_stages`), so each report says exactly how many further
reports to expect: the item is done when no report is outstanding. The count is kept per
image of the item (page, frame, original), so progress is known too.

The reports are trustworthy as counts because (1) a worker publishes a report, and has it
acknowledged, before the results it names: a result's report can never arrive before the
report of its cause; (2) reports of one item from one stage and one input partition arrive
in input-offset order, so a report redelivered after a crash (offset at or below the
last one applied) is recognised and dropped; positions are kept in the same state value.

Runs: the upload's own processing is run "" (the item's trace); a reprocess run is named by
its reprocess id and its events carry a trace of their own, which maps later reports of
other kinds to that run. A reprocess run's roots are the source events the reprocess worker
ran its stages on; it closes the run with a report on the ReprocessRequested that lists them.
Camera streams never complete: their reports are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from processors.bindings import FOLLOWING_STAGES, reporting_stages
from visionlog import contracts

ROOT = "~root"
OWN_RUN = ""
STATE_VERSION = 1
MAX_ERRORS = 20
# Events that start a new image of an item (a page, a frame).
_ITEM_STARTERS = frozenset({"PageRendered", "FrameCaptured"})
REPROCESS_WORKER = "reprocess"

# The reporters (stages) that take an event type; each publishes one report on an event.
ReportersOf = Callable[[str], Sequence[str]]


@dataclass
class RunState:
    run_id: str
    started_ms: float
    last_ms: float
    pending: dict[str, int] = field(default_factory=dict)
    failed_items: list[str] = field(default_factory=list)
    items_expected: int = 0
    items_completed: int = 0
    items_failed: int = 0
    tallies: dict[str, list[int]] = field(default_factory=dict)
    errors: list[list[str | None]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Known once the root is known: the upload (own run) or the reprocess worker's closing
    # report (a reprocess run), which lists how many roots to wait for.
    planned: bool = False
    roots_expected: int = 0
    roots_seen: int = 0
    completed: bool = False
    progress_percent: float = -1.0
    progress_dirty: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        return cls(**dict(data))

    @property
    def percent(self) -> float:
        if self.items_expected <= 0:
            return 0.0
        done = self.items_completed + self.items_failed
        return round(100.0 * done / self.items_expected, 1)

    def finished(self) -> bool:
        if not self.planned or self.completed:
            return False
        if self.roots_seen < self.roots_expected:
            return False
        return not any(count > 0 for count in self.pending.values())

    def status(self) -> contracts.CompletionStatus:
        failures = self.items_failed > 0 or any(t[3] > 0 for t in self.tallies.values())
        if not failures:
            return "COMPLETED"
        analysed = any(t[0] > 0 for stage, t in self.tallies.items() if stage != "render")
        if self.items_expected == 0 or not analysed:
            return "FAILED"
        return "COMPLETED_WITH_ERRORS"


@dataclass
class MediaState:
    media_id: str
    runs: dict[str, RunState] = field(default_factory=dict)
    traces: dict[str, str] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    tenant_id: str | None = None
    owner_id: str | None = None
    trace_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "media_id": self.media_id,
            "runs": {key: run.to_json() for key, run in self.runs.items()},
            "traces": self.traces,
            "positions": self.positions,
            "tenant_id": self.tenant_id,
            "owner_id": self.owner_id,
            "trace_id": self.trace_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MediaState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"completion state version {data.get('version')!r}")
        return cls(
            media_id=str(data["media_id"]),
            runs={key: RunState.from_json(run) for key, run in data["runs"].items()},
            traces=dict(data["traces"]),
            positions=dict(data["positions"]),
            tenant_id=data.get("tenant_id"),
            owner_id=data.get("owner_id"),
            trace_id=data.get("trace_id"),
        )


def _millis(value: Any) -> float:
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp() * 1000.0) if callable(timestamp) else float(value or 0)


def _is_image(label: str) -> bool:
    return label != ROOT


class CompletionTracker:
    """Applies uploads and work reports to one item's state; says what to publish."""

    def __init__(
        self,
        reporters_of: ReportersOf = reporting_stages,
        followers: frozenset[str] = FOLLOWING_STAGES,
    ) -> None:
        self.reporters_of = reporters_of
        # Stateful steps that follow a stage within its report (tracking): their outcomes
        # are counted, but they are not reports of their own.
        self.followers = followers

    def _run(self, state: MediaState, run_id: str, at_ms: float) -> RunState:
        run = state.runs.get(run_id)
        if run is None:
            run = RunState(run_id=run_id, started_ms=at_ms, last_ms=at_ms)
            state.runs[run_id] = run
        return run

    def uploaded(self, state: MediaState, upload: Mapping[str, Any]) -> list[RunState]:
        """The plan of the item's own run: its upload and who reports on it."""
        envelope = upload["envelope"]
        at_ms = _millis(envelope["occurred_at"])
        run = self._run(state, OWN_RUN, at_ms)
        state.tenant_id = envelope.get("tenant_id") or state.tenant_id
        state.owner_id = envelope.get("owner_id") or state.owner_id
        if envelope.get("trace_id"):
            state.trace_id = str(envelope["trace_id"])
            state.traces[state.trace_id] = OWN_RUN
        if run.planned:
            return []
        run.planned = True
        run.started_ms = min(run.started_ms, at_ms)
        label = "original" if upload.get("media_kind") == "IMAGE" else ROOT
        if _is_image(label):
            run.items_expected += 1
        run.pending[label] = run.pending.get(label, 0) + len(self.reporters_of("MediaUploaded"))
        self._settle(run)
        return self._finished(run)

    def reported(self, state: MediaState, report: Mapping[str, Any]) -> list[RunState]:
        """Apply one EventProcessed; the runs it finished (to publish MediaCompleted for)."""
        if report.get("camera_id") or report["input_event_type"] == "MediaCompleted":
            # Camera streams never complete; the report rendered after completion is not
            # part of the work that completion waits for.
            return []
        if erasure_report(report):
            return []
        worker = str(report["worker"])
        offset = int(report["input_offset"])
        # One report may speak for several stages (those that did not apply are reported
        # together); each stage's reports arrive in input order and are deduplicated apart.
        fresh = []
        for outcome in report["outcomes"]:
            position_key = "|".join(
                (
                    worker,
                    str(outcome["stage"]),
                    str(report.get("run_id") or ""),
                    str(report["input_topic"]),
                    str(report["input_partition"]),
                )
            )
            if offset > state.positions.get(position_key, -1):
                state.positions[position_key] = offset
                fresh.append(outcome)
        if not fresh:
            return []
        at_ms = _millis(report["envelope"]["occurred_at"])
        state.tenant_id = state.tenant_id or report["envelope"].get("tenant_id")
        state.owner_id = state.owner_id or report["envelope"].get("owner_id")
        run_id = report.get("run_id")
        if run_id is None:
            trace = report["envelope"].get("trace_id")
            run_id = state.traces.get(str(trace), OWN_RUN) if trace else OWN_RUN
        run = self._run(state, str(run_id), at_ms)
        if run.completed:
            return []
        run.last_ms = max(run.last_ms, at_ms)
        if report.get("run_id") and report["envelope"].get("trace_id"):
            state.traces[str(report["envelope"]["trace_id"])] = str(run_id)
        label = str(report.get("item_label") or ROOT)
        reporters = [o for o in fresh if str(o["stage"]) not in self.followers]
        if worker == REPROCESS_WORKER:
            if report["input_event_type"] == "ReprocessRequested":
                run.planned = True
                run.roots_expected = sum(len(o["outputs"]) for o in report["outcomes"])
                self._settle(run)
                return self._finished(run)
            # A root of the reprocess run: it starts its image, nothing was waiting for it.
            run.roots_seen += len(reporters)
            if _is_image(label) and label not in run.pending:
                run.items_expected += 1
                run.pending[label] = 0
        else:
            run.pending[label] = run.pending.get(label, 0) - len(reporters)
        for outcome in fresh:
            self._count(run, outcome, label)
        self._settle(run)
        return self._finished(run)

    def _count(self, run: RunState, outcome: Mapping[str, Any], label: str) -> None:
        stage = str(outcome["stage"])
        status = str(outcome["status"])
        reason = str(outcome.get("reason") or "failed")
        tally = run.tallies.setdefault(stage, [0, 0, 0, 0])
        column = {"DONE": 0, "NOT_APPLICABLE": 1, "SKIPPED": 2, "FAILED": 3}.get(status)
        if column is not None:
            tally[column] += 1
        if status == "FAILED":
            self._failed(run, stage, label, reason)
        for model in outcome.get("models") or []:
            run.models[f"{model['name']}@{model['version']}"] = dict(model)
        for output in outcome.get("outputs") or []:
            event_type = str(output["event_type"])
            out_label = str(output.get("item_label") or label)
            if event_type == "ProcessingFailed":
                if status != "FAILED":
                    # One part failed while the stage went on (a page that would not
                    # render): that part is an image of the item that failed.
                    self._failed(run, stage, out_label, reason)
                    if out_label != label and out_label not in run.pending:
                        run.items_expected += _is_image(out_label)
                        run.pending[out_label] = 0
                continue
            if event_type in _ITEM_STARTERS and _is_image(out_label):
                run.items_expected += 1
            kinds = self.reporters_of(event_type)
            if kinds:
                run.pending[out_label] = run.pending.get(out_label, 0) + len(kinds)

    @staticmethod
    def _failed(run: RunState, stage: str, label: str, message: str) -> None:
        if label not in run.failed_items:
            run.failed_items.append(label)
        if len(run.errors) < MAX_ERRORS:
            run.errors.append([stage, None if label == ROOT else label, message[:500]])

    @staticmethod
    def _settle(run: RunState) -> None:
        """Images with nothing outstanding are done; drop them from the pending map.

        Until the run's plan is known (a report can overtake the upload it follows), counts
        may be negative and nothing is settled."""
        if not run.planned:
            return
        for label in [key for key, count in run.pending.items() if count <= 0]:
            del run.pending[label]
            if _is_image(label):
                if label in run.failed_items:
                    run.items_failed += 1
                else:
                    run.items_completed += 1
                run.progress_dirty = True

    @staticmethod
    def _finished(run: RunState) -> list[RunState]:
        return [run] if run.finished() else []


def completion_record(
    state: MediaState, run: RunState, envelope: contracts.Envelope
) -> contracts.MediaCompleted:
    """The MediaCompleted record of a finished run (envelope made by the caller)."""
    return {
        "envelope": envelope,
        "media_id": state.media_id,
        "run_id": run.run_id or None,
        "status": run.status(),
        "items_expected": run.items_expected,
        "items_completed": run.items_completed,
        "items_failed": run.items_failed,
        "stages": tallies(run),
        "errors": [
            {"stage": str(stage), "item_label": label, "message": str(message)}
            for stage, label, message in run.errors
        ],
        "started_at": _datetime(run.started_ms),
        "duration_ms": int(max(0.0, run.last_ms - run.started_ms)),
        "models": [_model_ref(model) for model in run.models.values()],
    }


def progress_record(
    state: MediaState, run: RunState, envelope: contracts.Envelope
) -> contracts.MediaProgressed:
    return {
        "envelope": envelope,
        "media_id": state.media_id,
        "run_id": run.run_id or None,
        "items_expected": run.items_expected if run.planned else None,
        "items_completed": run.items_completed + run.items_failed,
        "percent": float(run.percent),
        "stages": tallies(run),
    }


def tallies(run: RunState) -> list[contracts.StageTally]:
    return [
        {
            "stage": stage,
            "done": counts[0],
            "not_applicable": counts[1],
            "skipped": counts[2],
            "failed": counts[3],
        }
        for stage, counts in sorted(run.tallies.items())
    ]


def _model_ref(model: Mapping[str, Any]) -> contracts.ModelRef:
    """A model as the state keeps it (a ModelRef of a work report, as JSON)."""
    return {
        "name": model["name"],
        "version": model["version"],
        "source": model["source"],
        "licence": model.get("licence"),
        "runtime": model.get("runtime"),
    }


def _datetime(millis: float) -> datetime:
    return datetime.fromtimestamp(int(millis) / 1000.0, UTC)


def erasure_report(report: Mapping[str, Any]) -> bool:
    """The work report of an item's erasure: after it the item has no state to follow."""
    return bool(report["input_event_type"] == "MediaDeleted")
