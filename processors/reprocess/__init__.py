"""Reprocessing: rerun stages on source events already in the log, with the models deployed
now, keeping earlier results beside the new ones.

`request` builds and publishes a `ReprocessRequested` (the audit trail); `execute` runs one
through the same worker core as the live workers; `worker` consumes the control topic.
"""
