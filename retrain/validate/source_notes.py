"""What is odd about a source before a single line is judged: it is empty, or it is named ``.gz``
but is not gzip (it is then read as plain text, as its bytes say).

``SourceWatch`` passes a source's chunks through unchanged while it counts its bytes and keeps
its first two; ``notes`` says what a person should know, one line each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from retrain.validate.jsonl_reader import GZIP_MAGIC

__all__ = ["SourceWatch"]


class SourceWatch:
    def __init__(self, name: str, chunks: Iterable[bytes]) -> None:
        self.name = name
        self._chunks = chunks
        self.size = 0
        self._head = b""

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if len(self._head) < len(GZIP_MAGIC):
                self._head += chunk[: len(GZIP_MAGIC) - len(self._head)]
            self.size += len(chunk)
            yield chunk

    def notes(self, lines_read: int) -> list[str]:
        """After the source was read: why it gave nothing, or was read differently than named."""
        if self.size == 0:
            return [f"{self.name} is empty (0 bytes): there is nothing in it to validate"]
        notes = []
        if self.name.endswith(".gz") and not self._head.startswith(GZIP_MAGIC):
            notes.append(f"{self.name} is named .gz but is not gzip-compressed: it was read as plain text")
        if lines_read == 0:
            notes.append(
                f"{self.name} holds only blank lines ({self.size:,} bytes): there is nothing to validate"
            )
        return notes
