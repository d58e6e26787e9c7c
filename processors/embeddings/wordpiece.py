"""WordPiece tokenisation for the sentence encoder, with the `tokenizers` wheel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# The encoder was trained on at most 256 tokens per text; longer texts are truncated.
MAX_TOKENS = 256


@dataclass(frozen=True)
class Batch:
    input_ids: np.ndarray  # (batch, tokens) int64
    attention_mask: np.ndarray  # (batch, tokens) int64, 1 for real tokens
    token_type_ids: np.ndarray  # (batch, tokens) int64, all 0 for single texts


class SentenceTokenizer:
    def __init__(self, tokenizer_json: Path, max_tokens: int = MAX_TOKENS) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        # The shipped file pads every text to 128 tokens; pad to the longest text instead.
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def __call__(self, texts: Sequence[str]) -> Batch:
        if not texts:
            raise ValueError("nothing to tokenise")
        encodings = self._tokenizer.encode_batch(list(texts))
        return Batch(
            input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
            attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64),
            token_type_ids=np.array([e.type_ids for e in encodings], dtype=np.int64),
        )
