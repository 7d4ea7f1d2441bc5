"""The S3 requests the code makes, recorded from its own boto3 clients, and the IAM requests each needs.

``S3Recorder.attach(client)`` registers botocore event hooks on one client:
``provide-client-params.s3`` sees every operation with the parameters the code passed (also for
a presigned URL, which is signed but not sent), and ``after-call.s3`` / ``after-call-error.s3``
see how S3 answered. Each call the client makes becomes one ``S3Call``; a paginated listing is
one call per page, as on the wire.

``iam_requests`` translates a call into the IAM requests S3 authorizes it by, following AWS's
"Required permissions for Amazon S3 API operations"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html):

=================  ==============================================================
HeadObject         s3:GetObject on the object
GetObject          s3:GetObject on the object (a presigned GET is the same request,
                   made later by whoever follows the link, on the signer's rights)
PutObject          s3:PutObject on the object; ``IfNoneMatch``/``IfMatch`` appear as
                   the condition keys ``s3:if-none-match``/``s3:if-match``
DeleteObject       s3:DeleteObject on the object (s3:DeleteObjectVersion with a VersionId)
ListObjectsV2      s3:ListBucket on the bucket, with ``s3:prefix`` when a Prefix is passed
HeadBucket         s3:ListBucket on the bucket, without ``s3:prefix``
=================  ==============================================================

A HeadObject or GetObject that S3 answered with 404 needs s3:ListBucket on the bucket as
well: S3 tells a missing key (404) from a forbidden one (403) only to a caller allowed to list
the bucket, and that check is not a listing, so it carries no ``s3:prefix`` (a ListBucket grant
conditioned on ``s3:prefix`` does not count). The code relies on those 404s (``get_json_or_none``,
``head``, the registry's probe of the next event), so they are part of what it needs.

Every request carries ``aws:SecureTransport=true``: on AWS (``RETRAIN_S3__ENDPOINT_URL`` empty)
the client's endpoint is https (checked in ``tests/infra/test_s3_requests.py``). Any other
operation raises ``UntranslatedOperation``: when the code starts calling something new, the
table grows with it instead of the call passing unjudged.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.infra.iam_policy import Request

__all__ = ["S3Call", "S3Recorder", "UntranslatedOperation", "folder_of", "iam_requests", "summary"]

_HTTPS = {"aws:SecureTransport": "true"}
_PENDING = "recorded_s3_call"


class UntranslatedOperation(ValueError):
    """An S3 operation the translation table does not know yet."""


@dataclass(frozen=True)
class S3Call:
    operation: str
    bucket: str
    key: str | None = None
    prefix: str | None = None
    if_none_match: str | None = None
    if_match: str | None = None
    version_id: str | None = None
    status: int | None = None  # the HTTP status of the answer; None when nothing was sent (presigned)
    presigned: bool = False


class S3Recorder:
    """Collects the S3 calls of every client attached to it, from any thread."""

    def __init__(self) -> None:
        self._calls: list[S3Call] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[S3Call]:
        with self._lock:
            return list(self._calls)

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        events.register("provide-client-params.s3", self._before)
        events.register("after-call.s3", self._answered)
        events.register("after-call-error.s3", self._failed)
        return client

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call = {
            "operation": model.name,
            "bucket": params.get("Bucket", ""),
            "key": params.get("Key"),
            "prefix": params.get("Prefix"),
            "if_none_match": params.get("IfNoneMatch"),
            "if_match": params.get("IfMatch"),
            "version_id": params.get("VersionId"),
        }
        if context.get("is_presign_request"):
            self._add(S3Call(**call, presigned=True))
        else:
            context[_PENDING] = call

    def _answered(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        self._finish(context, int(http_response.status_code))

    def _failed(self, context: dict[str, Any], **_: Any) -> None:
        self._finish(context, 0)  # no answer (connection error): the request still needed its permission

    def _finish(self, context: dict[str, Any], status: int) -> None:
        call = context.pop(_PENDING, None)
        if call is not None:
            self._add(S3Call(**call, status=status))

    def _add(self, call: S3Call) -> None:
        with self._lock:
            self._calls.append(call)


def _object(call: S3Call) -> str:
    if not call.key:
        raise UntranslatedOperation(f"{call.operation} without a key: {call}")
    return f"arn:aws:s3:::{call.bucket}/{call.key}"


def iam_requests(call: S3Call) -> list[Request]:
    """The IAM requests S3 authorizes this call by (see the module docstring for the table)."""
    bucket = f"arn:aws:s3:::{call.bucket}"
    if call.operation in ("GetObject", "HeadObject"):
        action = "s3:GetObjectVersion" if call.version_id else "s3:GetObject"
        requests = [Request(action, _object(call), _HTTPS)]
        if call.status == 404:
            requests.append(Request("s3:ListBucket", bucket, _HTTPS))
        return requests
    if call.operation == "PutObject":
        conditions = {"s3:if-none-match": call.if_none_match, "s3:if-match": call.if_match}
        context = _HTTPS | {key: value for key, value in conditions.items() if value is not None}
        return [Request("s3:PutObject", _object(call), context)]
    if call.operation == "DeleteObject":
        action = "s3:DeleteObjectVersion" if call.version_id else "s3:DeleteObject"
        return [Request(action, _object(call), _HTTPS)]
    if call.operation == "ListObjectsV2":
        prefix = {} if call.prefix is None else {"s3:prefix": call.prefix}
        return [Request("s3:ListBucket", bucket, _HTTPS | prefix)]
    if call.operation == "HeadBucket":
        return [Request("s3:ListBucket", bucket, _HTTPS)]
    raise UntranslatedOperation(
        f"no IAM translation for S3 {call.operation} yet: add it to tests/infra/s3_requests.py from "
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html"
    )


def folder_of(call: S3Call, key_prefix: str = "") -> str:
    """Where below the key prefix a call reads or writes, two folders deep: ``state/leases/``.

    A folder named by a date, a run or a model (it holds a digit) shows as ``*``
    (``reports/*/``); a file in the first two levels is named whole (``registry/LATEST.json``);
    ``(bucket)`` is the bucket itself (HeadBucket, or a listing of everything).
    """
    path = call.key if call.key is not None else call.prefix
    if call.operation == "HeadBucket" or not (path or "").removeprefix(key_prefix):
        return "(bucket)"
    *folders, name = str(path).removeprefix(key_prefix).split("/")
    shown = ["*" if any(c.isdigit() for c in folder) else folder for folder in folders[:2]]
    if len(folders) < 2 and name:
        return "/".join([*shown, name])
    return "/".join(shown) + "/"


def summary(calls: Iterable[S3Call], key_prefix: str = "") -> str:
    """How many calls, which IAM actions and which folders: for the test's output and the README."""
    calls = list(calls)
    requests = [request for call in calls for request in iam_requests(call)]
    actions = Counter(request.action for request in requests)
    folders = Counter(f"{folder_of(call, key_prefix)} {call.operation}" for call in calls)
    return "\n".join(
        _lines(
            f"{len(calls)} S3 calls ({len({c.operation for c in calls})} operations), "
            f"{len(requests)} IAM requests, {len(actions)} IAM actions, "
            f"{len({folder_of(c, key_prefix) for c in calls})} folders",
            actions,
            folders,
        )
    )


def _lines(head: str, actions: Counter[str], folders: Counter[str]) -> Iterator[str]:
    yield head
    for action, count in sorted(actions.items()):
        yield f"  {action}: {count}"
    for folder, count in sorted(folders.items()):
        yield f"  {folder}: {count}"
