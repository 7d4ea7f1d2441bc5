"""The CloudFormation template in ``infra/aws/retrain.yaml``, read as cfn-lint reads it.

moto's CloudFormation skips ``AWS::S3::BucketPolicy`` (and the bucket's versioning, public access
and lifecycle properties), so those are checked on the template itself, with the ``Ref``,
``Fn::Sub`` and ``Fn::GetAtt`` they use resolved for a stack's parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

__all__ = ["TEMPLATE", "bucket_values", "load_template", "resolve"]

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "aws" / "retrain.yaml"


def load_template() -> dict[str, Any]:
    template, problems = decode(str(TEMPLATE))
    assert not problems
    return dict(template)


def bucket_values(bucket: str, prefix: str) -> dict[str, str]:
    """What the bucket's properties and its policy refer to, for a stack with these parameters."""
    return {
        "BucketName": bucket,
        "KeyPrefix": prefix,
        "DataBucket": bucket,
        "DataBucket.Arn": f"arn:aws:s3:::{bucket}",
        "QuarantineRetentionDays": "30",
        "EvalsRetentionDays": "180",
        "NoncurrentVersionRetentionDays": "30",
    }


def resolve(node: Any, values: Mapping[str, str]) -> Any:
    """Resolve the intrinsic functions the template's bucket properties and bucket policy use."""
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    if not isinstance(node, Mapping):
        return node
    if set(node) == {"Ref"}:
        return values[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        return values[".".join(node["Fn::GetAtt"])]
    if set(node) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
    return {key: resolve(value, values) for key, value in node.items()}
