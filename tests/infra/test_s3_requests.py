"""The recorder of S3 calls and their translation into IAM requests (tests/infra/s3_requests.py)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from retrain.config.settings import S3Settings
from retrain.storage.object_store import ObjectStore, make_s3_client
from tests.infra.iam_policy import Request, decide, grants, without_grant
from tests.infra.s3_requests import S3Call, S3Recorder, UntranslatedOperation, folder_of, iam_requests

HTTPS = {"aws:SecureTransport": "true"}
BUCKET = "arn:aws:s3:::b"


@pytest.fixture
def recorded() -> Iterator[tuple[ObjectStore, S3Recorder]]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bkt")
        recorder = S3Recorder()
        yield ObjectStore(recorder.attach(client), "bkt", prefix="prod/"), recorder


def test_the_recorder_sees_each_call_with_its_parameters_and_answer(
    recorded: tuple[ObjectStore, S3Recorder],
) -> None:
    store, recorder = recorded
    store.put_json("registry/log/1.json", {}, create_only=True)
    store.put_json("registry/LATEST.json", {})
    assert store.get_json_or_none("state/missing.json") is None
    assert store.head("registry/log/1.json") is not None
    assert [info.key for info in store.list("registry/")] == ["registry/LATEST.json", "registry/log/1.json"]
    store.delete("registry/LATEST.json")
    store.presigned_url("registry/log/1.json")
    assert recorder.calls == [
        S3Call("PutObject", "bkt", "prod/registry/log/1.json", if_none_match="*", status=200),
        S3Call("PutObject", "bkt", "prod/registry/LATEST.json", status=200),
        S3Call("GetObject", "bkt", "prod/state/missing.json", status=404),
        S3Call("HeadObject", "bkt", "prod/registry/log/1.json", status=200),
        S3Call("ListObjectsV2", "bkt", prefix="prod/registry/", status=200),
        S3Call("DeleteObject", "bkt", "prod/registry/LATEST.json", status=204),
        S3Call("GetObject", "bkt", "prod/registry/log/1.json", presigned=True),
    ]


def test_a_paginated_listing_is_one_call_per_page(recorded: tuple[ObjectStore, S3Recorder]) -> None:
    store, recorder = recorded
    for n in range(1001):
        store._client.put_object(Bucket="bkt", Key=f"prod/state/{n:04d}", Body=b"")
    before = len(recorder.calls)
    assert len(list(store.list("state/"))) == 1001
    assert [c.operation for c in recorder.calls[before:]] == ["ListObjectsV2", "ListObjectsV2"]


def test_each_operation_becomes_the_iam_requests_s3_authorizes_it_by() -> None:
    key = "arn:aws:s3:::b/prod/state/x.json"
    assert iam_requests(S3Call("GetObject", "b", "prod/state/x.json", status=200)) == [
        Request("s3:GetObject", key, HTTPS)
    ]
    assert iam_requests(S3Call("HeadObject", "b", "prod/state/x.json", status=404)) == [
        Request("s3:GetObject", key, HTTPS),
        Request("s3:ListBucket", BUCKET, HTTPS),
    ]
    assert iam_requests(S3Call("PutObject", "b", "prod/state/x.json", if_none_match="*", status=412)) == [
        Request("s3:PutObject", key, {**HTTPS, "s3:if-none-match": "*"})
    ]
    assert iam_requests(S3Call("DeleteObject", "b", "prod/state/x.json", version_id="v1")) == [
        Request("s3:DeleteObjectVersion", key, HTTPS)
    ]
    assert iam_requests(S3Call("ListObjectsV2", "b", prefix="prod/state/")) == [
        Request("s3:ListBucket", BUCKET, {**HTTPS, "s3:prefix": "prod/state/"})
    ]
    assert iam_requests(S3Call("HeadBucket", "b")) == [Request("s3:ListBucket", BUCKET, HTTPS)]
    with pytest.raises(UntranslatedOperation, match="CopyObject"):
        iam_requests(S3Call("CopyObject", "b", "prod/state/y.json"))


def test_folders_name_where_a_call_lands_without_dates_runs_or_models() -> None:
    assert folder_of(S3Call("PutObject", "b", "prod/registry/LATEST.json"), "prod/") == "registry/LATEST.json"
    assert folder_of(S3Call("PutObject", "b", "prod/state/leases/nightly/1.json"), "prod/") == "state/leases/"
    assert folder_of(S3Call("PutObject", "b", "prod/reports/retrain-2026-11-01/b/x.html"), "prod/") == (
        "reports/*/"
    )
    assert folder_of(S3Call("ListObjectsV2", "b", prefix="prod/incoming/"), "prod/") == "incoming/"
    assert folder_of(S3Call("ListObjectsV2", "b", prefix="prod/"), "prod/") == "(bucket)"
    assert folder_of(S3Call("HeadBucket", "b"), "prod/") == "(bucket)"


def test_on_aws_the_client_speaks_https_so_requests_carry_secure_transport() -> None:
    on_aws = S3Settings(endpoint_url="", bucket="acme-retrain", access_key_id=None, secret_access_key=None)
    assert make_s3_client(on_aws).meta.endpoint_url.startswith("https://")


def test_without_one_grant_a_policy_refuses_exactly_that_pair() -> None:
    policy = {
        "Statement": [
            {
                "Sid": "Rw",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": ["arn:aws:s3:::b/a/*", "arn:aws:s3:::b/c/*"],
            },
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/c/x"},
        ]
    }
    pairs = [(g.sid, g.action, g.resource.rsplit("/", 2)[-2]) for g in grants(policy)]
    assert pairs == [
        ("Rw", "s3:GetObject", "a"),
        ("Rw", "s3:GetObject", "c"),
        ("Rw", "s3:PutObject", "a"),
        ("Rw", "s3:PutObject", "c"),
    ]
    narrowed = without_grant(policy, grants(policy)[3])
    assert decide([narrowed], Request("s3:PutObject", "arn:aws:s3:::b/c/y")) == "implicit-deny"
    for action, folder in [("s3:GetObject", "a"), ("s3:GetObject", "c"), ("s3:PutObject", "a")]:
        assert decide([narrowed], Request(action, f"arn:aws:s3:::b/{folder}/y")) == "allow"
    assert decide([narrowed], Request("s3:PutObject", "arn:aws:s3:::b/c/x")) == "deny"
    sids = [s.get("Sid") for s in narrowed["Statement"]]
    assert sids == [None, "Rw", "Rw2"]
    twice = without_grant(narrowed, next(g for g in grants(narrowed) if g.sid == "Rw"))
    assert len({s.get("Sid") for s in twice["Statement"]}) == len(twice["Statement"])
