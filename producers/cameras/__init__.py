"""Live cameras: capture, latest-frame-wins backpressure, publishing and health reports.

One producer process serves a set of cameras. Per camera, a capture thread reads frames as
fast as the source delivers them into a single-slot holder (a newer frame replaces an unsent
one, which counts as dropped), and a publishing thread takes the newest frame at the
camera's target rate, encodes it as JPEG, stores it in the blob store and publishes
FrameCaptured. A failing or ending source is reopened with exponential backoff and jitter;
files are played in a loop at their own frame rate instead, like a camera that never ends.

Identity and layout:
- media_id of a camera stream: UUIDv5 of tenant and camera name (`camera_media_id`), the
  same on every run, so all of one camera's frames share one Kafka key and partition.
- frame_index counts published frames from 0 since the producer started; timestamp_ms is
  the grab time in milliseconds since the producer started.
- frame blobs: ``media-processed/{media_id}/frames/{run_id}/{frame_index:08d}.jpg``; the
  run id (start time and a random suffix) keeps a restarted producer, whose indices begin
  at 0 again, from overwriting frames that earlier events still reference.
- CameraStatusReported goes to the compacted status topic keyed by camera name, every
  `status_interval_s` and whenever a camera's state changes.

Modules, one job each: `config` (camera sets), `sources` (source URLs and the reader
contract), `readers` and `mjpeg` (frame readers), `slot` and `backoff` (backpressure and
reconnect delays), `state`, `identity` (ids and blob keys), `records` (event records),
`encoding`, `worker` (one camera), `sink` and `producer` (the producer process).
"""

from producers.cameras.backoff import Backoff
from producers.cameras.config import CameraConfig, CameraSetConfig, load_camera_set
from producers.cameras.encoding import EncodedFrame, FrameSink, encode_frame
from producers.cameras.identity import (
    CAMERA_NAMESPACE,
    camera_media_id,
    frame_blob_key,
    new_run_id,
)
from producers.cameras.mjpeg import MAX_FRAME_BYTES, MjpegReader, MultipartJpegParser
from producers.cameras.producer import CameraSetProducer
from producers.cameras.readers import OpenCvReader, open_reader
from producers.cameras.records import PRODUCER, camera_status_record, frame_captured_record
from producers.cameras.sink import BlobAndEventSink
from producers.cameras.slot import CapturedFrame, LatestFrameSlot
from producers.cameras.sources import (
    FrameReader,
    RawFrame,
    SourceError,
    SourceKind,
    SourceSpec,
    parse_source,
)
from producers.cameras.state import CameraSnapshot, CameraState
from producers.cameras.worker import CameraWorker
from producers.urls import redact_url

__all__ = [
    "CAMERA_NAMESPACE",
    "MAX_FRAME_BYTES",
    "PRODUCER",
    "Backoff",
    "BlobAndEventSink",
    "CameraConfig",
    "CameraSetConfig",
    "CameraSetProducer",
    "CameraSnapshot",
    "CameraState",
    "CameraWorker",
    "CapturedFrame",
    "EncodedFrame",
    "FrameReader",
    "FrameSink",
    "LatestFrameSlot",
    "MjpegReader",
    "MultipartJpegParser",
    "OpenCvReader",
    "RawFrame",
    "SourceError",
    "SourceKind",
    "SourceSpec",
    "camera_media_id",
    "camera_status_record",
    "encode_frame",
    "frame_blob_key",
    "frame_captured_record",
    "load_camera_set",
    "new_run_id",
    "open_reader",
    "parse_source",
    "redact_url",
]
