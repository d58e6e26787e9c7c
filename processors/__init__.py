"""Stream processors: faust-streaming agents that turn input events into result events.

Each agent is a thin adapter around a pure function (OCR, detection, tracking, codes,
anonymisation, spatial reasoning, outputs, embeddings); failures go to the dead-letter topic.
"""
