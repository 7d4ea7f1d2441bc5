"""The CloudFormation template: lint-clean, deployable into moto, and least privilege.

moto's CloudFormation creates the bucket (with its encryption) and the IAM managed policy,
but skips ``AWS::S3::BucketPolicy`` and ``AWS::SecretsManager::Secret`` and ignores the
bucket's versioning, public access block and lifecycle properties. Those parts are checked
on the template itself, with its ``Ref``/``Fn::Sub``/``Fn::GetAtt`` resolved for the
parameters the stack was created with.

What the worker may do is proven against what the code does in
``tests/pipeline/test_worker_policy.py``; here are the requests it must never be allowed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.infra.aws_template import TEMPLATE, bucket_values, load_template, resolve
from tests.infra.iam_policy import Request, UnsupportedPolicy, decide, wildcard_match

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")

BUCKET = "acme-retrain"
PREFIX = "prod/"
ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:retrain/openai-api-key-AbC123"
HTTPS = {"aws:SecureTransport": "true"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The template deployed into moto with a key prefix and an existing worker role."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with mock_aws():
            iam = boto3.client("iam")
            iam.create_role(RoleName="retrain-worker", AssumeRolePolicyDocument=json.dumps({"Statement": []}))
            cloudformation = boto3.client("cloudformation")
            cloudformation.create_stack(
                StackName="retrain",
                TemplateBody=TEMPLATE.read_text(),
                Parameters=[
                    {"ParameterKey": "BucketName", "ParameterValue": BUCKET},
                    {"ParameterKey": "KeyPrefix", "ParameterValue": PREFIX},
                    {"ParameterKey": "WorkerRoleName", "ParameterValue": "retrain-worker"},
                ],
            )
            description = cloudformation.describe_stacks(StackName="retrain")["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
            policy_arn = outputs["WorkerPolicyArn"]
            version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
            # moto's CloudFormation skips the secret; Secrets Manager names it as AWS does.
            secret = boto3.client("secretsmanager").create_secret(Name="retrain/openai-api-key")
            yield {
                "secret_arn": secret["ARN"],
                "status": description["StackStatus"],
                "outputs": outputs,
                "worker_policy": document["Document"],
                "attached": iam.list_attached_role_policies(RoleName="retrain-worker")["AttachedPolicies"],
                "encryption": boto3.client("s3").get_bucket_encryption(Bucket=BUCKET),
            }


@pytest.fixture(scope="module")
def resolved_bucket() -> dict[str, Any]:
    values = bucket_values(BUCKET, PREFIX)
    resources = load_template()["Resources"]
    return {
        "bucket": resolve(resources["DataBucket"]["Properties"], values),
        "policy": resolve(resources["DataBucketPolicy"]["Properties"]["PolicyDocument"], values),
    }


def test_cfn_lint_is_clean() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_deploys_into_moto_with_encrypted_bucket(stack: dict[str, Any]) -> None:
    assert stack["status"] == "CREATE_COMPLETE"
    assert stack["outputs"]["BucketName"] == BUCKET
    rules = stack["encryption"]["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert [p["PolicyArn"] for p in stack["attached"]] == [stack["outputs"]["WorkerPolicyArn"]]


def test_stack_deploys_without_prefix_or_role() -> None:
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(
            StackName="bare",
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": "BucketName", "ParameterValue": "bare-retrain"}],
        )
        stack = cloudformation.describe_stacks(StackName="bare")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert boto3.client("s3", region_name="eu-west-1").head_bucket(Bucket="bare-retrain")


def test_bucket_is_versioned_private_and_expires_outputs(resolved_bucket: dict[str, Any]) -> None:
    bucket = resolved_bucket["bucket"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rules = {rule["Prefix"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["prod/quarantine/"]["ExpirationInDays"] == "30"
    assert rules["prod/evals/"]["ExpirationInDays"] == "180"
    assert "ExpirationInDays" not in rules["prod/state/"]
    assert not any(prefix.startswith(("prod/registry", "prod/curated", "prod/incoming")) for prefix in rules)
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_secret_value_is_never_in_the_template() -> None:
    secret = load_template()["Resources"]["ApiKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert not {"SecretString", "GenerateSecretString"} & set(secret["Properties"])


def _in(folder: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{PREFIX}{folder}"


# What the worker needs is recorded from the code, not listed here: tests/pipeline/test_worker_policy.py
# runs the nights, flows and commands on moto with this policy enforced and checks each recorded
# request against it. These are what it must never do.
DENIED = [
    # writes outside the folders it writes, and into folders it only reads
    Request("s3:PutObject", _in("incoming/2026-11-25/x.jsonl"), HTTPS),
    Request("s3:PutObject", _in("eval/main/items.jsonl"), HTTPS),
    Request("s3:PutObject", _in("other/x"), HTTPS),
    Request("s3:PutObject", _in("statements/x"), HTTPS),
    Request("s3:PutObject", _in("x.json"), HTTPS),
    Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/reports/x.html", HTTPS),
    Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/incoming/x.jsonl", HTTPS),
    # registry events, snapshots and heads are never replaced
    Request("s3:PutObject", _in("registry/log/000000000002.json"), HTTPS),
    Request("s3:PutObject", _in("registry/snapshots/000000000100.json"), HTTPS),
    Request("s3:PutObject", _in("registry/heads/000000000100.json"), HTTPS),
    # deletes: only superseded lease records, upload records and the migrated ingest index
    *(
        Request(action, _in(key), HTTPS)
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion")
        for key in (
            "registry/log/000000000001.json",
            "registry/LATEST.json",
            "state/decisions/ds-0001.json",
            "state/decisions/LAST.json",
            "state/ingest/watermark.json",
            "state/x.json",
            "incoming/2026-11-25/x.jsonl",
            "curated/LATEST.json",
        )
    ),
    Request("s3:DeleteObjectVersion", _in("state/leases/nightly/000000000001.json"), HTTPS),
    Request("s3:AbortMultipartUpload", _in("state/x.json"), HTTPS),
    # plain HTTP, another bucket, the bucket's configuration, other accounts' buckets
    Request("s3:GetObject", _in("state/x.json"), {"aws:SecureTransport": "false"}),
    Request("s3:GetObject", "arn:aws:s3:::another-bucket/prod/incoming/x.jsonl", HTTPS),
    Request("s3:PutObject", "arn:aws:s3:::another-bucket/prod/state/x.json", HTTPS),
    Request("s3:DeleteObject", "arn:aws:s3:::another-bucket/prod/state/leases/x.json", HTTPS),
    Request("s3:ListBucket", "arn:aws:s3:::another-bucket", {**HTTPS, "s3:prefix": "prod/state/"}),
    Request("s3:ListBucket", "arn:aws:s3:::another-bucket", HTTPS),
    Request("s3:PutBucketPolicy", f"arn:aws:s3:::{BUCKET}", HTTPS),
    Request("s3:DeleteBucket", f"arn:aws:s3:::{BUCKET}", HTTPS),
    Request("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{BUCKET}", HTTPS),
    Request("s3:PutBucketVersioning", f"arn:aws:s3:::{BUCKET}", HTTPS),
    Request("s3:ListAllMyBuckets", "*"),
    # secrets: only reading the one API key
    Request("secretsmanager:PutSecretValue", SECRET_ARN),
    Request("secretsmanager:DescribeSecret", SECRET_ARN),
    Request(
        "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:other-AbC123"
    ),
    Request(
        "secretsmanager:GetSecretValue",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:retrain/openai-api-key-old-AbC123",
    ),
    Request("iam:AttachRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/retrain-worker"),
]


@pytest.mark.parametrize("request_", DENIED, ids=lambda r: f"{r.action} {r.resource.rsplit(':', 1)[-1]}")
def test_worker_may_not(request_: Request, stack: dict[str, Any], resolved_bucket: dict[str, Any]) -> None:
    assert decide([stack["worker_policy"], resolved_bucket["policy"]], request_) != "allow"


def test_the_worker_reads_the_api_key_secret_by_its_real_arn(stack: dict[str, Any]) -> None:
    """Whatever starts the worker reads the key with GetSecretValue (README, "Deploy"), nothing more.

    The ARN is the one Secrets Manager gave the secret (its name, "-" and six random characters).
    No KMS permission: the secret has no KmsKeyId, so it is encrypted with the AWS managed key
    ``aws/secretsmanager``, which Secrets Manager uses on the caller's behalf.
    """
    read = Request("secretsmanager:GetSecretValue", stack["secret_arn"])
    assert stack["secret_arn"].startswith(
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:retrain/openai-api-key-"
    )
    assert decide([stack["worker_policy"]], read) == "allow"
    assert "KmsKeyId" not in load_template()["Resources"]["ApiKeySecret"]["Properties"]


def test_registry_and_decisions_are_protected_even_from_admins(resolved_bucket: dict[str, Any]) -> None:
    admin = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    documents = [admin, resolved_bucket["policy"]]
    event = _in("registry/log/000000000001.json")
    assert decide(documents, Request("s3:PutObject", event, HTTPS)) == "deny"
    assert decide(documents, Request("s3:PutObject", event, {**HTTPS, "s3:if-none-match": "*"})) == "allow"
    assert decide(documents, Request("s3:PutObject", _in("registry/LATEST.json"), HTTPS)) == "allow"
    for key in ("registry/log/000000000001.json", "registry/LATEST.json", "state/decisions/ds-0001.json"):
        assert decide(documents, Request("s3:DeleteObject", _in(key), HTTPS)) == "deny"
        assert decide(documents, Request("s3:DeleteObjectVersion", _in(key), HTTPS)) == "deny"
    assert decide(documents, Request("s3:DeleteObject", _in("state/leases/nightly/1.json"), HTTPS)) == "allow"


def test_evaluator_matches_wildcards_exactly() -> None:
    assert wildcard_match("arn:aws:s3:::b/prod/state/*", "arn:aws:s3:::b/prod/state/a/b.json")
    assert not wildcard_match("arn:aws:s3:::b/prod/state/*", "arn:aws:s3:::b/prod/statex")
    assert wildcard_match("s3:Get*", "S3:GETOBJECT", case_sensitive=False)
    assert not wildcard_match("s3:Get*", "S3:GETOBJECT")
    assert wildcard_match("k-??????", "k-abcdef")
    assert not wildcard_match("k-??????", "k-abcdefg")


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "x"}},
        },
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"},
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": {"AWS": "x"}},
    ],
)
def test_evaluator_rejects_what_it_does_not_model(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedPolicy):
        decide([{"Statement": [statement]}], Request("s3:GetObject", "arn:aws:s3:::b/x"))
