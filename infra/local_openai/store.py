"""Persistent state: one SQLite database of JSON documents plus a folder of file blobs.

Every object the API returns (files, jobs, events, checkpoints, fine-tuned models) is a
document of a kind, ordered by insertion. One connection is shared behind a lock, so the
request threads and the training worker can use the store at once.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Document", "Store", "new_id"]

Document = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    parent TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_kind_parent ON documents (kind, parent, seq);
"""


_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, separator: str = "-") -> str:
    """An OpenAI-style id such as ``ftjob-3kV...`` (24 random letters and digits)."""
    return prefix + separator + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class Store:
    """Documents by kind and id; blobs by file id; learners by model key."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.blob_dir = data_dir / "blobs"
        self.learner_dir = data_dir / "learners"
        for folder in (self.blob_dir, self.learner_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(data_dir / "state.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def insert(self, kind: str, doc: Document, *, parent: str | None = None) -> Document:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO documents (kind, id, parent, body) VALUES (?, ?, ?, ?)",
                (kind, doc["id"], parent, orjson.dumps(doc).decode()),
            )
        return doc

    def get(self, kind: str, doc_id: str) -> Document | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM documents WHERE kind = ? AND id = ?", (kind, doc_id)
            ).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def update(
        self, kind: str, doc_id: str, change: Callable[[Document], Document | None]
    ) -> Document | None:
        """Read-modify-write under the lock; ``change`` returns the new document or None to leave it."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT body FROM documents WHERE kind = ? AND id = ?", (kind, doc_id)
            ).fetchone()
            if row is None:
                return None
            doc: Document = dict(orjson.loads(row[0]))
            new = change(doc)
            if new is None:
                return doc
            db.execute(
                "UPDATE documents SET body = ? WHERE kind = ? AND id = ?",
                (orjson.dumps(new).decode(), kind, doc_id),
            )
            return new

    def delete(self, kind: str, doc_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, doc_id)).rowcount > 0

    def list(self, kind: str, *, parent: str | None = None, newest_first: bool = False) -> list[Document]:
        order = "DESC" if newest_first else "ASC"
        where = "kind = ? AND parent = ?" if parent else "kind = ?"
        query = f"SELECT body FROM documents WHERE {where} ORDER BY seq {order}"
        with self._lock:
            rows = self._db.execute(query, (kind, parent) if parent else (kind,)).fetchall()
        return [dict(orjson.loads(row[0])) for row in rows]

    def blob_path(self, file_id: str) -> Path:
        return self.blob_dir / file_id

    def learner_path(self, key: str) -> Path:
        return self.learner_dir / f"{key}.pkl"
