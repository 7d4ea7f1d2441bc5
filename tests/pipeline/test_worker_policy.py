"""The worker's IAM policy, proven against every S3 request of real nights, flows and commands.

The template is deployed into moto's server (the one the ``stack`` fixture runs), the worker
runs on the credentials of its role, which has the template's managed policy attached, and moto
checks each request's signature, action and resource against that policy
(``enable_iam_authentication``). moto evaluates no conditions, no bucket policy for IAM
principals and no ``?`` wildcard (``infra/aws/README.md``, "How the policy is tested"), so
every S3 call the code makes is also recorded from its own boto3 clients and judged by
``tests/infra/iam_policy.py`` against the deployed worker policy and the template's bucket
policy, conditions included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.core.authorization import enable_iam_authentication
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.settings import get_settings
from retrain.ingest.lease import NIGHTLY, Holder, acquire
from retrain.local.demo import NIGHTS, Night, land_night, seed_eval_set
from retrain.registry.registry import Registry
from retrain.registry.resolver import AliasReader, CachedResolver
from retrain.storage import object_store
from retrain.storage.layout import LEGACY_PROCESSED_KEY
from retrain.storage.object_store import ObjectStore
from tests.infra.aws_template import TEMPLATE, bucket_values, load_template, resolve
from tests.infra.iam_policy import Request, decide, grants, without_grant
from tests.infra.s3_requests import S3Call, S3Recorder, iam_requests, summary
from tests.pipeline.conftest import Stack, client, run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")]

ACCOUNT = "123456789012"  # moto's default account
PREFIX = "prod/"


@dataclass
class Worker:
    """The deployed stack, an operator allowed everything, and what the worker's clients sent."""

    operator: ObjectStore
    iam: Any
    policy_arn: str
    bucket_policy: dict[str, Any]
    recorder: S3Recorder

    def worker_policy(self) -> dict[str, Any]:
        """The managed policy's default version: what moto enforces for the worker's role."""
        policy = self.iam.get_policy(PolicyArn=self.policy_arn)["Policy"]
        version = self.iam.get_policy_version(PolicyArn=self.policy_arn, VersionId=policy["DefaultVersionId"])
        document: dict[str, Any] = version["PolicyVersion"]["Document"]
        return document

    def revoke(self, folder: str) -> None:
        """A new default version of the worker policy, without its grants on ``folder`` (``reports/*``)."""
        document = self.worker_policy()
        on_folder = f"/{PREFIX}{folder}"
        assert any(grant.resource.endswith(on_folder) for grant in grants(document))
        while revoked := [grant for grant in grants(document) if grant.resource.endswith(on_folder)]:
            document = without_grant(document, revoked[0])
        self.iam.create_policy_version(
            PolicyArn=self.policy_arn, PolicyDocument=json.dumps(document), SetAsDefault=True
        )


def _client(service: str, endpoint: str, key_id: str = "testing", secret: str = "testing") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}),
    )


def _deploy(endpoint: str, bucket: str, role: str) -> str:
    """The template's stack (key prefix ``prod/``, the worker role named); its WorkerPolicy ARN."""
    cloudformation = _client("cloudformation", endpoint)
    cloudformation.create_stack(
        StackName=bucket,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "BucketName", "ParameterValue": bucket},
            {"ParameterKey": "KeyPrefix", "ParameterValue": PREFIX},
            {"ParameterKey": "WorkerRoleName", "ParameterValue": role},
        ],
    )
    (stack,) = cloudformation.describe_stacks(StackName=bucket)["Stacks"]
    return next(str(o["OutputValue"]) for o in stack["Outputs"] if o["OutputKey"] == "WorkerPolicyArn")


def _worker_role(iam: Any, bucket: str) -> str:
    """The role the worker runs as, which the stack attaches its WorkerPolicy to."""
    role = f"{bucket}-worker"  # moto's IAM outlives its server: names of this test's own
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", **trust}))
    # moto authorizes HeadBucket as "s3:HeadBucket" (ACTION_MAP in moto/s3/responses.py), an action
    # IAM does not have; AWS authorizes it as s3:ListBucket, which the recorded check judges.
    head_bucket = {"Effect": "Allow", "Action": "s3:HeadBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    document = {"Version": "2012-10-17", "Statement": [head_bucket]}
    iam.put_role_policy(RoleName=role, PolicyName="moto-head-bucket", PolicyDocument=json.dumps(document))
    return role


def _operator(iam: Any, bucket: str) -> dict[str, str]:
    """Access keys of a user allowed everything: who lands data and reads the policy back."""
    name = f"{bucket}-operator"
    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [everything]}
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(document))
    keys: dict[str, str] = iam.create_access_key(UserName=name)["AccessKey"]
    return keys


def _as_on_aws(monkeypatch: pytest.MonkeyPatch, bucket: str, credentials: dict[str, str]) -> None:
    """retrain's settings as on AWS: no S3 keys of its own, the role's in the default chain."""
    env = {
        "RETRAIN_S3__BUCKET": bucket,
        "RETRAIN_S3__PREFIX": PREFIX,
        "RETRAIN_S3__ACCESS_KEY_ID": "",
        "RETRAIN_S3__SECRET_ACCESS_KEY": "",
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        # Options that make a night do more on S3: deleting uploads, a guardrail eval set.
        "RETRAIN_TRAINING__DELETE_FILES_AFTER_JOB": "true",
        "RETRAIN_EVALUATION__GUARDRAILS": '{"safety": 1.0}',
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the credential chain is read again, from this env
    get_settings.cache_clear()


@pytest.fixture
def worker(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """The stack deployed into the moto server, retrain on the worker role, moto enforcing its policy."""
    endpoint = str(stack.settings.s3.endpoint_url)
    bucket = f"{stack.settings.s3.bucket}-prod"
    root = _client("iam", endpoint)
    role = _worker_role(root, bucket)
    policy_arn = _deploy(endpoint, bucket, role)
    keys = _operator(root, bucket)
    operator = ObjectStore(
        _client("s3", endpoint, keys["AccessKeyId"], keys["SecretAccessKey"]), bucket, PREFIX
    )
    for name, items in (("main", 120), ("safety", 30)):
        seed_eval_set(operator, name, items)
    arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
    _as_on_aws(
        monkeypatch,
        bucket,
        _client("sts", endpoint).assume_role(RoleArn=arn, RoleSessionName="worker")["Credentials"],
    )
    recorder = S3Recorder()
    make_client = object_store.make_s3_client
    monkeypatch.setattr(object_store, "make_s3_client", lambda s3: recorder.attach(make_client(s3)))
    policy = load_template()["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"]
    with enable_iam_authentication():
        yield Worker(
            operator=operator,
            iam=_client("iam", endpoint, keys["AccessKeyId"], keys["SecretAccessKey"]),
            policy_arn=policy_arn,
            bucket_policy=resolve(policy, bucket_values(bucket, PREFIX)),
            recorder=recorder,
        )
    get_settings.cache_clear()


def retrain(*args: str) -> str:
    """A command of the CLI, in this process (so that its clients are recorded); it must succeed."""
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    assert result.exit_code == 0, f"retrain {' '.join(args)}:\n{result.output}"
    return result.output


def tell_the_story(worker: Worker, stack: Stack) -> None:
    """A month of a worker: every flow of every deployment, and each command of the CLI that uses S3."""
    from flows.evaluate import evaluate
    from flows.rollback import rollback

    # A bucket written by a retrain from before per-partition indexes: the first night migrates it.
    worker.operator.put_json(LEGACY_PROCESSED_KEY, {"incoming/2026-10-31/old.jsonl": "0" * 32})
    for story in NIGHTS:  # promote, promote, reject, nothing new, too few examples
        land_night(worker.operator, story)
        state = run(story.night.isoformat())
        outcome = re.sub(r"(?<!^)(?=[A-Z])", " ", state.name).lower()  # TooFewExamples: too few examples
        assert state.is_completed() and story.expect in outcome, f"{state.name}: {state.message}"
    promoted = [event.model.model_id for event in Registry(worker.operator).history("production")]
    assert rollback(alias="production", steps=1, reason="test")["after"] == promoted[0]
    evaluate(candidate=promoted[-1], production="production")

    land_night(worker.operator, Night(date(2026, 10, 30), "a straggler, under an old date", 40, seed=9))
    assert "1 new object(s)" in retrain("ingest", "--reconcile")
    retrain("batches", "show", json.loads(retrain("batches", "list", "--json"))[0]["batch_id"], "--raw")
    for command in (
        ["data", "list"],
        ["data", "show"],
        ["spend"],
        ["history"],
        ["history", "--set", "safety"],
    ):
        retrain(*command)
    retrain("alias", "list")
    retrain("alias", "show", "production")
    retrain("alias", "history", "production")
    retrain("alias", "set", "production", promoted[-1], "--no-verify", "--reason", "test")
    retrain("alias", "rollback", "production", "--reason", "test")
    assert retrain("alias", "resolve", "production").strip() == promoted[0]
    retrain("eval", "--candidate", promoted[-1], "--production", "production")
    retrain("chat", "hello?")
    job = client(stack).fine_tuning.jobs.list(limit=1).data[0].id
    for command in (["jobs", "list"], ["jobs", "show", job], ["jobs", "cancel", job], ["lease", "show"]):
        retrain(*command)
    store = ObjectStore.from_settings(get_settings().s3)
    acquire(store, NIGHTLY, Holder("retrain-vanished", "f-1", "worker-b", 4242, ""), timedelta(minutes=15))
    retrain("lease", "break", "--yes")
    # Serving: a cold reader that replays past the newest heads file writes a newer one.
    reader = CachedResolver(AliasReader(store, compact_after=1), ttl_seconds=0)
    assert reader.resolve("production").model_id == promoted[0]
    # Every 100th registry event writes a snapshot; here the next one does.
    current = Registry(store).current("production").model
    Registry(store, snapshot_every=1).set("staging", current, actor="test", reason="a snapshot")


def refused(calls: list[S3Call], documents: list[dict[str, Any]]) -> list[tuple[S3Call, Request]]:
    """The recorded calls (with the IAM request each needs) that these policies do not allow."""
    return [
        (call, request)
        for call in calls
        for request in iam_requests(call)
        if decide(documents, request) != "allow"
    ]


def test_every_s3_request_of_a_month_is_allowed_and_every_grant_is_needed(
    worker: Worker, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tell_the_story(worker, stack)  # every request of it passed moto's enforcement of the policy
    calls = worker.recorder.calls
    with capsys.disabled():
        print("\n" + summary(calls, PREFIX))
    policy = worker.worker_policy()
    assert refused(calls, [policy, worker.bucket_policy]) == []
    unused = [
        grant
        for grant in grants(policy)
        if grant.action.startswith("s3:")
        and not refused(calls, [without_grant(policy, grant), worker.bucket_policy])
    ]
    assert unused == [], "granted, but no recorded request needs it"


def test_without_reports_in_the_policy_the_first_night_fails_at_ingest(worker: Worker) -> None:
    worker.revoke("reports/*")
    land_night(worker.operator, Night(date(2026, 11, 1), "a few examples", 5, seed=1))
    state = run("2026-11-01")
    assert state.is_failed()
    assert (
        "S3 refused access to s3://" in state.message
        and f"/{PREFIX}reports/retrain-2026-11-01/" in state.message
    )
    assert "(AccessDenied)" in state.message
    refused_puts = [
        call for call in worker.recorder.calls if call.operation == "PutObject" and call.status == 403
    ]
    assert len(refused_puts) == 1, "a refused request is not retried: it is refused again"
