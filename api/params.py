"""Shared parameter constraints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# PostgreSQL text cannot hold NUL: text parameters refuse it up front (422, in the schema).
NO_NUL = r"^[^\x00]*$"

# Identifiers in paths: media, job and key ids.
PathId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
