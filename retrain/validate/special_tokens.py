"""Special tokens written as text: the check that the fine-tuning service would fail us on.

A tokenizer turns the text ``<|endoftext|>`` (or ``<|im_start|>``, ``<|fim_prefix|>``, ...) into
its control token, not into characters, so an example holding one trains the model on a forged
message boundary or end of text; OpenAI's service rejects such a file after upload, and an
open-weight base's chat template renders it as markup. A line whose messages hold one is
quarantined with ``special_token``, naming the token and the field.

Which strings are special depends on the base model's tokenizer. For the OpenAI families: the
special tokens of both bundled vocabularies (``tokens.get_encoding``: cl100k_base's FIM tokens
too, since the service's own check is not published per model and a line wrongly kept costs a
failed job, one wrongly quarantined costs one example) and the ChatML message markup of their
chat format. For an open-weight base the caller passes its tokenizer's control tokens
(``retrain.train.lora.special_tokens``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from retrain.validate.reason import Reason
from retrain.validate.secret_scan import example_texts
from retrain.validate.tokens import get_encoding

__all__ = ["CHATML_MARKUP", "SpecialTokenScan", "openai_special_tokens"]

CHATML_MARKUP = frozenset({"<|im_start|>", "<|im_end|>", "<|im_sep|>"})
"""The message markup of OpenAI's chat format (ChatML): special tokens of every chat model."""


@lru_cache(maxsize=1)
def openai_special_tokens() -> frozenset[str]:
    """The strings the OpenAI families' tokenizers read as special tokens."""
    vocabularies = (get_encoding(name).special_tokens_set for name in ("cl100k_base", "o200k_base"))
    return frozenset().union(*vocabularies) | CHATML_MARKUP


class SpecialTokenScan:
    """Finds the first special token in the texts of an example.

    The raw line is searched first (one regex over its bytes), so only the rare lines that may
    hold a token have their texts walked; a line with ``\\u`` escapes is always walked, since an
    escape can spell a token that its raw bytes do not show.
    """

    def __init__(self, tokens: frozenset[str]) -> None:
        ordered = sorted(tokens, key=lambda token: (-len(token), token))  # longest first
        self._patterns = (
            (
                re.compile(b"|".join(re.escape(token.encode()) for token in ordered)),
                re.compile("|".join(re.escape(token) for token in ordered)),
            )
            if ordered
            else None
        )

    def reason(self, example: dict[str, Any], data: bytes, line_no: int) -> Reason | None:
        """``special_token`` for the first field of ``example`` (parsed from ``data``) holding one."""
        if self._patterns is None:
            return None
        raw, text_pattern = self._patterns
        if not raw.search(data) and b"\\u" not in data:
            return None
        for path, text in example_texts(example):
            found = text_pattern.search(text)
            if found:
                return Reason(
                    "special_token",
                    f"line {line_no}: {path} contains the special token {found.group()!r}, which the "
                    "base model's tokenizer reads as a control token: remove it or write it differently",
                )
        return None
