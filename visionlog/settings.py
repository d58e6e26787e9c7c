"""One typed settings object for every process of the platform.

Values come from environment variables prefixed ``VISIONLOG_`` (nested groups with a
double underscore, e.g. ``VISIONLOG_KAFKA__BOOTSTRAP_SERVERS``) and from a ``.env`` file.
The defaults point at the local stack on loopback, on non-standard ports; production
servers are reached by configuration alone.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    # PostgreSQL refuses to run as root, so as root the stack runs it as the `postgres`
    # user, which cannot enter /root: root's state lives in the system location instead.
    if os.geteuid() == 0:
        return Path("/var/lib/visionlog")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "visionlog"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "visionlog"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_id: str = "visionlog"
    # Topic names get this prefix, so several environments can share one cluster.
    topic_prefix: str = ""
    # Partition counts in the catalogue are multiplied by this (at least 1 partition).
    partition_scale: float = 1.0
    replication_factor: int = 1

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties shared by producers, consumers and the admin client."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config


class RegistrySettings(BaseModel):
    # Confluent-compatible API; Apicurio serves it under /apis/ccompat/v7.
    url: str = "http://127.0.0.1:18081/apis/ccompat/v7"
    username: str | None = None
    password: SecretStr | None = None
    # Replays read every event ever written with today's reader schema, so every new
    # schema must read all earlier versions, not just the last one.
    compatibility: str = "BACKWARD_TRANSITIVE"
    # Every request is bounded: a registry that never answers must not hang a processor.
    timeout_s: float = 10.0


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 15432
    user: str = "visionlog"
    password: SecretStr = SecretStr("visionlog-local")
    database: str = "visionlog"
    sslmode: str = "prefer"

    def conninfo(self, database: str | None = None) -> str:
        # make_conninfo quotes values, so passwords may hold spaces and quotes.
        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password.get_secret_value(),
            dbname=database or self.database,
            sslmode=self.sslmode,
        )


class MongoSettings(BaseModel):
    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27018/")
    database: str = "visionlog"


class MinioSettings(BaseModel):
    endpoint: str = "127.0.0.1:19000"
    access_key: str = "visionlog"
    secret_key: SecretStr = SecretStr("visionlog-local-secret")
    secure: bool = False
    region: str = "us-east-1"


class QdrantSettings(BaseModel):
    # Empty url: qdrant-client's embedded local mode, on disk under the state directory.
    url: str | None = None
    api_key: SecretStr | None = None
    path: Path | None = None
    # The HNSW graph of every vector collection, set explicitly (Qdrant's defaults): m edges
    # per node, ef_construct candidates while building. Larger is better recall, more memory
    # and slower upserts; a new value applies to collections created after it (a rebuild).
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100


class StackSettings(BaseModel):
    """Where and how the local stack runs its servers."""

    kafka_controller_port: int = 19093
    registry_management_port: int = 19081
    minio_console_port: int = 19001
    ferretdb_debug_port: int = 18088
    # FerretDB's storage: a database of the stack's PostgreSQL ("postgresql"), or SQLite
    # files under its state directory ("sqlite"). bench/mongo_backend.py measured the
    # PostgreSQL handler faster per event and cheaper in CPU. Switching needs a restart of
    # ferretdb and a `visionlog replay rebuild mongo`: the other backend starts empty.
    ferretdb_backend: Literal["sqlite", "postgresql"] = "postgresql"
    java_home: Path | None = None
    kafka_heap: str = "512m"
    registry_heap: str = "384m"
    start_timeout_s: float = 120.0


class IngestSettings(BaseModel):
    """Limits and defaults of the producers (uploads, documents, videos, URL fetches)."""

    max_upload_bytes: int = 512 * 1024 * 1024
    # Decoded pixels allowed per image or page: a small file may declare a huge canvas.
    max_image_pixels: int = 100_000_000
    max_pdf_pages: int = 500
    pdf_dpi: int = 150
    # Video sampling: a target rate, or every Nth frame when set.
    video_sample_fps: float = 1.0
    video_every_n_frames: int | None = None
    max_video_frames: int = 3600
    frame_jpeg_quality: int = 90
    fetch_timeout_s: float = 30.0
    fetch_max_bytes: int = 512 * 1024 * 1024
    # Fetching from loopback, private or link-local addresses lets a caller probe the
    # internal network (SSRF); allow it only where every caller is trusted.
    fetch_allow_private_networks: bool = False
    default_profile: Literal["ocr", "vision", "full"] = "full"
    # Publishing after a stored blob is retried this often before the upload fails loudly.
    publish_attempts: int = 5
    # Pixels of one rendered PDF page (render stage): a larger page is rendered at the
    # highest DPI that fits, so a 14,400-pt page costs tens of MB, not gigabytes.
    max_page_pixels: int = 25_000_000
    # How long an upload waits for the brokers to acknowledge MediaUploaded (also the
    # ingest producer's delivery timeout), so a Kafka restart is waited out, not reported
    # as a failure while the event is still on its way.
    publish_timeout_s: float = 60.0
    # An Idempotency-Key whose first upload is still in progress makes a retry wait this
    # long for it; after that the retry takes the upload over (same media id and event id).
    idempotency_lease_s: float = 120.0


class ProcessorSettings(BaseModel):
    """Model choices and tuning of the stream processors."""

    detection_score_threshold: float = 0.35
    # A user-supplied YOLO (v5/v8/11) ONNX or OpenVINO IR file replaces the default detector.
    yolo_model_path: Path | None = None
    yolo_class_names_path: Path | None = None
    # Focal length of the camera in pixels (square pixels assumed), for distance estimates.
    focal_length_px: float = 1000.0
    # Anonymisation: how regions are hidden, how much margin around them, face threshold.
    redaction_method: Literal["BLUR", "PIXELATE", "FILL"] = "BLUR"
    redaction_padding: float = 0.15
    face_score_threshold: float = 0.3
    # Spoken scene descriptions (espeak-ng) stored as outputs.
    speech_enabled: bool = False
    # Transient failures are retried this often, with exponential backoff, then dead-lettered.
    max_attempts: int = 3
    retry_backoff_s: float = 0.5
    retry_max_backoff_s: float = 10.0
    # An unreachable store or broker is waited out this long before the input is
    # dead-lettered as retryable (a redrive finishes it); a live frame waits at most until
    # it is stale.
    outage_deadline_s: float = 300.0
    # Live camera frames older than this when a latency-critical stage would start on them
    # are skipped (per camera: `max_age_s` in the camera's configuration).
    live_max_age_ms: int = 2000
    # Messages a worker works on at once (stages of one message run in parallel too);
    # beyond this, batch inputs wait in Kafka. 0 means twice the CPU count.
    max_in_flight: int = 0
    # Threads running stages; 0 means the CPU count.
    stage_threads: int = 0
    # Offsets are committed after every N messages or T seconds, once every event derived
    # from them is acknowledged by the brokers.
    commit_every_messages: int = 500
    commit_every_s: float = 1.0
    # A worker that dies without leaving its consumer group is noticed after this long;
    # its partitions (and their state) then move to the others.
    session_timeout_s: float = 10.0
    # Completion: how often progress of an item may be published, and how often cameras'
    # analysis health is reported.
    progress_interval_s: float = 2.0
    camera_report_interval_s: float = 10.0
    # Workers restart after this many items or when resident memory exceeds the limit.
    recycle_after_items: int = 0
    # The document worker holds the OCR and text models and a few pages' bitmaps: about
    # 2-3 GB on a long document run, so at 3 GB it recycled every few minutes under load.
    recycle_above_rss_mb: int = 4096
    # A worker whose engines are not ready after startup_timeout_s, or whose event loop
    # stops for stall_timeout_s, writes every thread's stack to its log and exits; the
    # supervisor starts a fresh one (a hung worker would otherwise hold its partitions).
    startup_timeout_s: float = 300.0
    stall_timeout_s: float = 180.0
    # A stage job running longer than this since it started or last noted progress (a
    # render notes each page) is stuck (the longest real step, OCR of a giant page, takes
    # about a minute): the worker writes the stacks to its log and exits, and its
    # unacknowledged inputs are read again by the fresh one. 0 turns the check off.
    stage_timeout_s: float = 300.0
    inference_threads: int = 2
    # The OpenVINO runtime (processors/openvino_runtime.py). f32, because OpenVINO picks
    # bf16 on CPUs that have it and scores and vectors would then depend on the host.
    inference_precision: Literal["f32", "bf16", "f16"] = "f32"
    # Compiled models are cached under cache_dir/openvino, so a worker starts faster.
    compiled_model_cache: bool = True
    # Input shapes whose CPU kernels OpenVINO keeps per compiled model. Its default (5000)
    # keeps kernels for every page size and text line width OCR ever saw: 40 pages of
    # varied sizes grew the OCR engine to 2.4 GB, against 2.0 GB at 0, no slower.
    inference_shape_cache: int = 0
    # THROUGHPUT runs frames side by side, one per stream (most frames per second under
    # load); LATENCY runs one frame on all threads (fastest single frame on an idle host).
    detection_performance_hint: Literal["LATENCY", "THROUGHPUT"] = "THROUGHPUT"
    # Each detected object of a recorded item is embedded (one backbone pass per object) for
    # similar-object search; off where that search is not wanted.
    object_embeddings: bool = True
    # Square input side of the backbone for object crops (a multiple of 32; 0: the
    # detector's own 416). At 416 the crops of a street photo cost the vision worker more
    # than everything else it does; 224 costs 0.3 of that and separates people from
    # vehicles as well (bench/embedding_cost.py); 160 is cheaper still but separates less.
    object_embedding_side: int = 224
    # The live worker's detector: someone waits for each of its frames and uploads, and a
    # few cameras at 5 fps are well within what one frame at a time on all threads serves.
    live_detection_performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    # Messages the live worker works on at once. Its detector runs one frame at a time, so
    # a frame taken beyond two (one inferring, one being decoded) only waits inside the
    # detector while newer frames arrive: with four places a camera's frame waited 0.46 s
    # there under the sustained load. A lane takes its camera's newest frame when a place
    # frees instead. 0 means the batch kinds' window (max_in_flight).
    live_max_in_flight: int = 2
    # JPEG frames much larger than the detector's input are decoded at 1/2, 1/4 or 1/8
    # scale (1.5-2.5x cheaper than a full decode); boxes still come out in original pixels.
    detection_reduced_decode: bool = True
    # Pages the OCR engine reads at once, each with its own inference requests; 0 means
    # the CPU count.
    ocr_parallel_pages: int = 0
    # A worker runs full-size pages and texts through its OCR engine and text embedder
    # before it consumes (processors/ocr/warmup.py): it starts at its working memory
    # instead of growing to it over its first pages (about 5 s more at startup).
    warm_up_working_size: bool = True


class ProjectionSettings(BaseModel):
    # Live read models: the PostgreSQL schema, and the prefix of Mongo collections and
    # Qdrant collections. Tests and rebuilds use their own names side by side.
    postgres_schema: str = "readmodel"
    qdrant_collection_prefix: str = "visionlog"
    # Events per transaction or bulk write.
    batch_size: int = 200
    # Kafka offsets (of projections that do not keep them in their store) are committed
    # after the write, every N events or T seconds; a crash replays at most that much,
    # which the idempotent writes absorb.
    commit_every_messages: int = 1000
    commit_every_s: float = 1.0
    # A batch closes when full or after this long: the latency a quiet log adds.
    poll_timeout_s: float = 0.02
    # How often a live projection looks whether a rebuild switched the generation.
    generation_check_s: float = 5.0
    # Prometheus metrics (lag, applied events) of a projection process; 0 turns them off.
    metrics_port: int = 18091
    # With embedded Qdrant (no url), only one process may open the store: the API process
    # then hosts the Qdrant projection too.
    qdrant_in_api: bool | None = None
    # A failed projection restarts on its own after first_s, doubling per failure in a row
    # up to max_s; a run of reset_after_s without failure starts the backoff over.
    restart_first_s: float = 1.0
    restart_max_s: float = 60.0
    restart_reset_after_s: float = 120.0
    # Readiness (of the projections process and of the API) fails while a projection is
    # more messages behind the log than this; the lag is in the answer.
    ready_max_lag: int = 1000
    # A store write that takes longer than this pauses the projection's partitions and
    # keeps polling, so the consumer stays in its group (max.poll.interval) while it waits.
    pause_after_s: float = 1.0
    # The consumer's group timeouts; max_poll_interval_ms must be at least
    # session_timeout_ms. A projection killed without leaving its group holds its
    # partitions until its session expires: with librdkafka's 45 s default the restarted
    # projection waited that long (read models current 80 s after a SIGKILL under
    # bench/faults.py). Heartbeats come from librdkafka's own thread, and the polling
    # thread never waits on a store, so 10 s is safe.
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000


class HealthSettings(BaseModel):
    # Probes and metrics of a worker process; 0 turns the endpoint off (the local default,
    # since several workers share one host there). Kubernetes sets host 0.0.0.0 and a port.
    host: str = "127.0.0.1"
    port: int = 0
    # Liveness fails when the process's main loop has not beaten for this long.
    stale_after_s: float = 120.0


class LoggingSettings(BaseModel):
    """How a process writes its log (`visionlog.observability.logs.configure_logging`)."""

    # "json": one JSON object a line, for a log collector (what a worker in a container
    # writes); "text": readable lines for a person; "auto": text when the log goes to a
    # terminal, JSON otherwise, so a CLI at a prompt reads well and a deployed worker (no
    # terminal) is machine-readable without configuration.
    format: Literal["auto", "json", "text"] = "auto"
    level: str = "INFO"
    # Levels of single loggers, e.g. VISIONLOG_LOGGING__LEVELS='{"aiokafka": "DEBUG"}'.
    # The Kafka clients are chatty at INFO about every rebalance and reconnect, the HTTP
    # clients (schema registry) about every request.
    levels: dict[str, str] = Field(
        default_factory=lambda: {
            "aiokafka": "WARNING",
            "kafka": "WARNING",
            "urllib3": "WARNING",
            "httpx": "WARNING",
            "httpx2": "WARNING",
        }
    )


class TracingSettings(BaseModel):
    """OpenTelemetry export of the processors' spans (`visionlog.observability.tracing`)."""

    # OTLP/HTTP collector, e.g. http://otel-collector:4318 (/v1/traces is appended when the
    # URL has no path). Unset: no exporter and no SDK are loaded; trace ids still travel on
    # every event in the envelope and the `traceparent` header.
    otlp_endpoint: str | None = None
    # Extra request headers for the collector (e.g. an API key), as a JSON object.
    otlp_headers: dict[str, SecretStr] = Field(default_factory=dict)
    export_timeout_s: float = 10.0
    # Share of traces recorded where no upstream decision was made; a sampled parent
    # (traceparent flag 01) is always followed, so a trace is never cut in the middle.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 18000
    # Public URL printed for users; defaults to http://host:port.
    public_url: str | None = None
    # Asymmetric signing key (PEM, Ed25519 or RSA). Generated under the state directory
    # when unset, so a local install signs with its own key.
    jwt_private_key_path: Path | None = None
    jwt_algorithm: Literal["EdDSA", "RS256", "ES256"] = "EdDSA"
    jwt_issuer: str = "visionlog"
    jwt_audience: str = "visionlog-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600
    # The local admin, created on first start when no admin exists. The password is
    # generated and written under the state directory unless given.
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    presigned_url_ttl_s: int = 300
    sse_poll_interval_s: float = 1.0
    max_page_size: int = 200
    # PostgreSQL connections per API process (autocommit; requests hold one per query).
    pool_min_size: int = 4
    pool_max_size: int = 16
    # uvicorn worker processes. Honoured only with a Qdrant server (qdrant.url): with the
    # embedded store one process may open it, and the API process hosts its projection.
    workers: int = 1
    # How long a final (completed, completed_with_errors, failed) item's detail is served
    # from memory before it is read again; 0 turns the cache off.
    detail_cache_ttl_s: float = 1.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VISIONLOG_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: str = "local"
    tenant_id: str = "default"
    state_dir: Path = Field(default_factory=_default_state_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    postgres: PostgresSettings = PostgresSettings()
    mongo: MongoSettings = MongoSettings()
    minio: MinioSettings = MinioSettings()
    qdrant: QdrantSettings = QdrantSettings()
    stack: StackSettings = StackSettings()
    ingest: IngestSettings = IngestSettings()
    processors: ProcessorSettings = ProcessorSettings()
    projections: ProjectionSettings = ProjectionSettings()
    api: ApiSettings = ApiSettings()
    health: HealthSettings = HealthSettings()
    logging: LoggingSettings = LoggingSettings()
    tracing: TracingSettings = TracingSettings()

    @property
    def qdrant_path(self) -> Path:
        return self.qdrant.path or self.state_dir / "qdrant"

    @property
    def qdrant_embedded(self) -> bool:
        return not self.qdrant.url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
