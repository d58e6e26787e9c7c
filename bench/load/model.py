"""What one sustained-load run observed: plain records, filled by the collectors and read
by the report (no I/O here, so the report can be tested with synthetic runs)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunConfig:
    minutes: float
    cameras: int
    source_fps: float
    target_fps: float
    document_every_s: float
    document_pages: int
    images_per_s: float
    drain_timeout_s: float
    # Camera name -> its profile (one of them runs "live-anonymised").
    camera_profiles: dict[str, str] = field(default_factory=dict)

    @property
    def whole_minutes(self) -> int:
        """Minutes of the load the camera latency table has rows for (a partial last
        minute gets its own row)."""
        return max(1, -int(-self.minutes // 1))


@dataclass(frozen=True)
class Timeline:
    start_ms: int  # the load started (uploads began, cameras warm)
    load_end_ms: int  # the load stopped (last upload sent, cameras stopped)
    drain_end_ms: int  # measuring stopped
    drain_end_reason: str  # "all done", "timeout", "idle for N s"


@dataclass(frozen=True)
class FrameOutcome:
    """One camera frame published in this run and what became of it."""

    camera: str
    captured_ms: int
    # Create time of its first ObjectsDetected on vision.detections.
    detected_ms: int | None = None
    # "stale" or "superseded" when the live worker reported it skipped.
    skipped: str | None = None
    # Where an analysed frame's time went: create time of its FrameCaptured on Kafka, and
    # from the live worker's report the wait before its detection started and how long
    # detection took (fetch, decode, inference).
    published_ms: int | None = None
    queue_ms: float | None = None
    stage_ms: float | None = None
    # The detector's own inference time, part of stage_ms.
    inference_ms: float | None = None


@dataclass(frozen=True)
class SourceCounters:
    """A camera's counters from the producer's last CameraStatusReported of the run."""

    captured: int
    dropped: int
    published: int
    state: str


@dataclass(frozen=True)
class LiveCounters:
    """A worker's own view of a camera (its last CameraAnalysisReported for a stage)."""

    camera: str
    worker: str
    stage: str
    received: int
    analysed: int
    skipped_stale: int
    skipped_superseded: int
    max_age_ms: int


@dataclass(frozen=True)
class Upload:
    kind: str  # "document" or "image"
    name: str
    sent_ms: int  # the request started
    answered_ms: int
    media_id: str | None  # None when the API refused it or did not answer
    error: str | None = None


@dataclass(frozen=True)
class Completion:
    at_ms: int  # MediaCompleted's envelope.occurred_at
    status: str


@dataclass(frozen=True)
class ProcessRecord:
    """One platform process role (e.g. "worker live", "api") over the run."""

    role: str
    pids: tuple[int, ...]  # every pid seen in the role, in order
    # Exit codes the supervisor logged for the role during the run (workers only).
    exits: tuple[int, ...] = ()
    rss_baseline_mb: float | None = None  # at minute 2 of the load
    rss_end_mb: float | None = None  # at the end of the load
    rss_peak_mb: float | None = None
    # Whether the pid measured at the end is the one measured at the baseline.
    same_pid_for_rss: bool = True
    # Nobody restarts the top-level processes: one that vanished crashed.
    vanished: bool = False
    # CPU seconds of all its pids over their lives (at their last sample).
    cpu_s: float | None = None

    @property
    def restarts(self) -> int:
        return max(len(self.pids) - 1, len(self.exits))

    @property
    def crashes(self) -> int:
        return sum(1 for code in self.exits if code != 0) + int(self.vanished)


@dataclass
class Observations:
    frames: list[FrameOutcome] = field(default_factory=list)
    sources: dict[str, SourceCounters] = field(default_factory=dict)
    live: list[LiveCounters] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    # media id -> its MediaCompleted of the upload's own processing (run_id null)
    completions: dict[str, Completion] = field(default_factory=dict)
    # media id -> page count its MediaUploaded announced
    page_counts: dict[str, int] = field(default_factory=dict)
    # media id -> create time of each page's first TextRecognized
    pages: dict[str, dict[int, int]] = field(default_factory=dict)
    # media id -> create time of its first ObjectsDetected (uploads)
    detections: dict[str, int] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    # read model -> (sample time, ms behind the log) through the run
    read_lag: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # Topics that did not exist (their events show as "no data").
    missing_topics: list[str] = field(default_factory=list)
    undecodable: int = 0
    bench_cpu_s: float = 0.0
    # What the run could not do as asked (e.g. a camera setting the platform lacks).
    notes: list[str] = field(default_factory=list)
