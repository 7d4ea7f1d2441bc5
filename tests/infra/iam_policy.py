"""A small, exact evaluator for the subset of IAM policy language the retrain template uses.

It decides one request (action, resource ARN, condition context) against a list of policy
documents the way IAM does within one account: an explicit Deny wins, else any Allow
allows, else the request is implicitly denied.

Supported, exactly: ``Effect`` Allow/Deny; ``Action`` and ``Resource`` as a string or a
list, with ``*`` and ``?`` wildcards (actions case-insensitive, resources case-sensitive);
``Principal: "*"`` (resource policies); condition operators ``StringEquals``,
``StringLike``, ``Bool`` and ``Null`` with several keys (AND) and several values (OR).

Not supported, and rejected with ``UnsupportedPolicy`` rather than guessed: ``NotAction``,
``NotResource``, ``NotPrincipal``, named principals, policy variables (``${aws:username}``),
``...IfExists`` and ``ForAllValues/ForAnyValue`` operators, and every other operator.
Outside the model entirely: permission boundaries, SCPs, session policies, KMS key
policies and cross-account rules.

``grants`` and ``without_grant`` take a policy apart into its (action, resource) pairs, so a
test can show that each one is needed: the policy minus that one pair must refuse something.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Grant", "Request", "UnsupportedPolicy", "decide", "grants", "wildcard_match", "without_grant"]

Decision = Literal["allow", "deny", "implicit-deny"]

_SUPPORTED_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition", "Principal"}


class UnsupportedPolicy(ValueError):
    """The policy uses a feature this evaluator does not model."""


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcard matching: ``*`` is any run of characters (also ``/``), ``?`` exactly one."""
    if "${" in pattern:
        raise UnsupportedPolicy(f"policy variables are not modelled: {pattern!r}")
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_OPERATORS = {"StringEquals", "StringLike", "Bool", "Null"}


def _condition_holds(operator: str, key: str, expected: list[str], context: Mapping[str, str]) -> bool:
    if operator not in _OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator!r} is not modelled")
    actual = context.get(key)
    if operator == "Null":
        if expected not in (["true"], ["false"]):
            raise UnsupportedPolicy(f"Null takes 'true' or 'false', got {expected!r}")
        return (actual is None) == (expected == ["true"])
    if actual is None:
        return False
    if operator == "StringEquals":
        return actual in expected
    if operator == "StringLike":
        return any(wildcard_match(pattern, actual) for pattern in expected)
    return actual.lower() in (value.lower() for value in expected)


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    return all(
        _condition_holds(operator, key, _as_list(values), context)
        for operator, by_key in conditions.items()
        for key, values in by_key.items()
    )


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    unknown = set(statement) - _SUPPORTED_KEYS
    if unknown:
        raise UnsupportedPolicy(f"statement keys {sorted(unknown)} are not modelled")
    if "Principal" in statement and statement["Principal"] != "*":
        raise UnsupportedPolicy(f"only Principal '*' is modelled, got {statement['Principal']!r}")
    return (
        any(wildcard_match(p, request.action, case_sensitive=False) for p in _as_list(statement["Action"]))
        and any(wildcard_match(p, request.resource) for p in _as_list(statement["Resource"]))
        and _conditions_hold(statement.get("Condition", {}), request.context)
    )


def decide(documents: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The decision for one request against identity and resource policies of one account."""
    effects = {
        statement["Effect"]
        for document in documents
        for statement in _as_list_of_statements(document["Statement"])
        if _applies(statement, request)
    }
    if "Deny" in effects:
        return "deny"
    return "allow" if "Allow" in effects else "implicit-deny"


def _as_list_of_statements(statements: Any) -> list[Mapping[str, Any]]:
    return [statements] if isinstance(statements, Mapping) else list(statements)


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern, as one Allow statement of a policy grants it."""

    statement: int  # its index in the policy's statements
    sid: str
    action: str
    resource: str


def grants(document: Mapping[str, Any]) -> list[Grant]:
    """Every (action, resource) pair the policy's Allow statements grant, statement by statement."""
    return [
        Grant(index, str(statement.get("Sid", index)), action, resource)
        for index, statement in enumerate(_as_list_of_statements(document["Statement"]))
        if statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


def without_grant(document: Mapping[str, Any], grant: Grant) -> dict[str, Any]:
    """The policy granting exactly what it grants but this one pair (its conditions kept).

    The statement is split in two, its other actions on all its resources and this action on
    its other resources; the second gets a Sid of its own, as IAM wants Sids unique.
    """
    statements = _as_list_of_statements(document["Statement"])
    statement = statements[grant.statement]
    actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
    kept = [s for index, s in enumerate(statements) if index != grant.statement]
    others = {**statement, "Action": [a for a in actions if a != grant.action]}
    rest = {**statement, "Action": [grant.action], "Resource": [r for r in resources if r != grant.resource]}
    if "Sid" in statement:
        taken = {s.get("Sid") for s in [*kept, others]}
        rest["Sid"] = next(
            f"{statement['Sid']}{n}"
            for n in range(2, len(taken) + 3)
            if f"{statement['Sid']}{n}" not in taken
        )
    return {**document, "Statement": [*kept, *(s for s in (others, rest) if s["Action"] and s["Resource"])]}
