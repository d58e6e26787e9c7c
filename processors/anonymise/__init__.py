"""Anonymisation: faces and licence plates in images, personal data in text."""

from processors.anonymise.boxes import Box
from processors.anonymise.keys import redacted_image_key, redacted_text_key
from processors.anonymise.pii import MaskedText, PiiFinding, find_pii, mask_pii
from processors.anonymise.redact import RedactionMethod, redact

__all__ = [
    "Box",
    "MaskedText",
    "PiiFinding",
    "RedactionMethod",
    "find_pii",
    "mask_pii",
    "redact",
    "redacted_image_key",
    "redacted_text_key",
]
