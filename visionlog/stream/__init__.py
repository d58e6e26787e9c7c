"""The one stream core every consumer of the log uses: processors, projections and replay.

It knows nothing of a stream framework: inbound messages and their headers, the dead-letter
record, the retry policy, offset checkpoints, per-key ordering and the admission of live
frames are plain code, driven by the faust workers (`processors.worker`), the projection
runner (`projections.runtime`) and the replay jobs alike.
"""
