"""Object storage over boto3: the only module that talks to S3.

It needs nothing beyond what every S3 we run on supports (AWS, moto, localbucket): plain
puts and gets, ranged streaming reads, paginated listing with ``StartAfter``, and
create-only writes (``IfNoneMatch='*'``) for records that must never be overwritten.
All keys are relative to the configured prefix.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from retrain.config.services import S3Settings
from retrain.exceptions import (
    AlreadyExists,
    BucketNotFound,
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["ObjectInfo", "ObjectStore", "make_s3_client", "split_s3_uri"]

logger = logging.getLogger(__name__)

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_REFUSED_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}
_EXPIRED_CODES = {"ExpiredToken", "TokenRefreshRequired"}  # refreshed credentials fix these


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime | None = None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` as (bucket, key); either is empty when the URI lacks it."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def make_s3_client(settings: S3Settings) -> S3Client:
    """A boto3 S3 client for the configured endpoint (path-style, bounded retries)."""
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    }
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.access_key_id and settings.secret_access_key:
        kwargs["aws_access_key_id"] = settings.access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = settings.secret_access_key.get_secret_value()
    client: S3Client = boto3.client("s3", **kwargs)
    return client


class _SharedClients:
    """One client per endpoint, region and credentials in a process: boto3's clients are
    thread-safe, and building one costs 20-50 ms, which every task of a night paid again. A forked
    child starts afresh (its own connections, and a lock no thread of the parent holds)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str | None, ...], S3Client] = {}

    def get(self, settings: S3Settings) -> S3Client:
        if self._pid != os.getpid():
            self._reset()
        key = (
            settings.endpoint_url,
            settings.region,
            settings.access_key_id.get_secret_value() if settings.access_key_id else None,
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None,
        )
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make_s3_client(settings)
            return self._clients[key]


_shared_clients = _SharedClients()


class ObjectStore:
    """A bucket (and optional prefix) seen as keys holding bytes, JSON or JSONL."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_settings(cls, settings: S3Settings) -> ObjectStore:
        """The store of the configured bucket, on the process's client for its endpoint."""
        return cls(_shared_clients.get(settings), settings.bucket, settings.prefix)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    # -- bucket ---------------------------------------------------------------

    def check_bucket(self) -> None:
        """Raise BucketNotFound / StorageUnavailable unless the bucket is usable."""
        with self._translate(f"bucket {self.bucket!r}"):
            self._client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (local stack and tests)."""
        try:
            self.check_bucket()
        except BucketNotFound:
            with self._translate(f"bucket {self.bucket!r}"):
                self._client.create_bucket(Bucket=self.bucket)

    # -- writes ---------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, content_type: str | None = None
    ) -> str:
        """Write an object; with create_only, raise AlreadyExists if the key exists. Returns the ETag."""
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
        if content_type:
            extra["ContentType"] = content_type
        with self._translate(key):
            response = self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data, **extra)
        return str(response.get("ETag", "")).strip('"')

    def put_json(self, key: str, value: Any, *, create_only: bool = False) -> str:
        return self.put_bytes(
            key, orjson.dumps(value, option=_JSON_OPTIONS | orjson.OPT_INDENT_2), create_only=create_only
        )

    def put_jsonl(self, key: str, records: Iterable[Any], *, create_only: bool = False) -> str:
        body = b"".join(orjson.dumps(record, option=_JSON_OPTIONS) + b"\n" for record in records)
        return self.put_bytes(key, body, create_only=create_only)

    def delete(self, key: str) -> None:
        with self._translate(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    # -- reads ----------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        with self._translate(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            return response["Body"].read()

    def get_json(self, key: str, *, missing: str | None = None) -> Any:
        """The parsed object; ObjectNotFound if there is none (with ``missing`` as its message)."""
        try:
            return orjson.loads(self.get_bytes(key))
        except ObjectNotFound as exc:
            if missing is None:
                raise
            raise ObjectNotFound(missing) from exc

    def get_json_or_none(self, key: str) -> Any:
        try:
            return self.get_json(key)
        except ObjectNotFound:
            return None

    def iter_json(self, prefix: str, *, newest: int | None = None) -> Iterator[Any]:
        """The ``.json`` objects under prefix, parsed (a LIST, then one GET each).

        With ``newest``, only the most recently written ones: at least that many, more when
        several were written within the same second as the oldest of them (the caller orders
        and trims by what is inside). Meant for objects written once, like manifests.
        """
        infos = [info for info in self.list(prefix) if info.key.endswith(".json")]
        written = {info.key: info.last_modified for info in infos if info.last_modified is not None}
        if newest is not None and len(infos) > newest and len(written) == len(infos):
            boundary = sorted(written.values())[-newest]
            infos = [info for info in infos if written[info.key] >= boundary]
        for info in infos:
            yield self.get_json(info.key)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object's bytes without holding it all in memory."""
        with self._translate(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            body = response["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    def iter_lines(self, key: str) -> Iterator[bytes]:
        """Stream an object line by line (raw bytes, line endings stripped of \\n only)."""
        pending = b""
        for chunk in self.iter_chunks(key):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending

    def presigned_url(self, key: str, expires_seconds: int = 7 * 24 * 3600) -> str:
        """A time-limited HTTP link to read one object (for links in the Prefect UI)."""
        with self._translate(key):
            return str(
                self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": self._full(key)},
                    ExpiresIn=expires_seconds,
                )
            )

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with self._translate(key):
                response = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key=key,
            etag=str(response.get("ETag", "")).strip('"'),
            size=int(response.get("ContentLength", 0)),
            last_modified=response.get("LastModified"),
        )

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under prefix, in key order, following pagination."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._full(start_after)
        with self._translate(prefix or "/"):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(**kwargs):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"][len(self.prefix) :],
                        etag=str(item.get("ETag", "")).strip('"'),
                        size=int(item.get("Size", 0)),
                        last_modified=item.get("LastModified"),
                    )

    # -- internals ------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self.prefix + key.lstrip("/")

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """Map botocore errors to retrain's storage errors, with a hint to fix them."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or (code in _MISSING_KEY_CODES and what.startswith("bucket ")):
                raise BucketNotFound(
                    f"bucket {self.bucket!r} does not exist: create it or set RETRAIN_S3__BUCKET"
                ) from exc
            if code in _MISSING_KEY_CODES:
                raise ObjectNotFound(f"{self.uri(what)} does not exist") from exc
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                raise AlreadyExists(f"{self.uri(what)} already exists (create-only write)") from exc
            if code in _EXPIRED_CODES:
                raise StorageUnavailable(
                    f"S3 credentials expired reading or writing {self.uri(what)} ({code}): a retry "
                    "uses refreshed ones; static keys need replacing (RETRAIN_S3__ACCESS_KEY_ID)"
                ) from exc
            if code in _REFUSED_CODES or status == 403:
                raise StorageAccessDenied(
                    f"S3 refused access to {self.uri(what)} ({code}): check the credentials "
                    "(RETRAIN_S3__ACCESS_KEY_ID / RETRAIN_S3__SECRET_ACCESS_KEY) and bucket policy"
                ) from exc
            raise StorageError(f"S3 error on {self.uri(what)}: {code or status}") from exc
        except NoCredentialsError as exc:
            raise StorageUnavailable(
                "no S3 credentials found: set RETRAIN_S3__ACCESS_KEY_ID and "
                "RETRAIN_S3__SECRET_ACCESS_KEY, or configure the AWS credential chain"
            ) from exc
        except EndpointConnectionError as exc:
            raise StorageUnavailable(
                f"cannot reach the S3 endpoint {exc.kwargs.get('endpoint_url', '')}: "
                "start it (`retrain local up`) or fix RETRAIN_S3__ENDPOINT_URL"
            ) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 request for {self.uri(what)} failed: {exc}") from exc
