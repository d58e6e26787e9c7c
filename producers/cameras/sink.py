"""Where a published camera frame goes: the blob store, then its FrameCaptured event."""

from __future__ import annotations

from producers.cameras.config import CameraConfig
from producers.cameras.encoding import EncodedFrame
from producers.cameras.identity import camera_media_id, frame_blob_key
from producers.cameras.records import frame_captured_record
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.kafka import EventPublisher


class BlobAndEventSink:
    """Stores a frame in the blob store, then publishes its FrameCaptured event."""

    def __init__(
        self, blobs: BlobStore, publisher: EventPublisher, tenant_id: str, run_id: str
    ) -> None:
        self._blobs = blobs
        self._publisher = publisher
        self._tenant_id = tenant_id
        self.run_id = run_id

    def __call__(self, camera: CameraConfig, frame: EncodedFrame) -> None:
        media_id = camera_media_id(self._tenant_id, camera.name)
        key = frame_blob_key(media_id, self.run_id, frame.frame_index)
        ref = self._blobs.put_bytes(PROCESSED, key, frame.jpeg, "image/jpeg")
        record = frame_captured_record(
            camera=camera,
            media_id=media_id,
            tenant_id=self._tenant_id,
            run_id=self.run_id,
            frame_index=frame.frame_index,
            timestamp_ms=frame.timestamp_ms,
            captured_at=frame.captured_at,
            width=frame.width,
            height=frame.height,
            image=ref,
            source_fps=frame.source_fps,
        )
        self._publisher.publish("FrameCaptured", record, key=media_id)
