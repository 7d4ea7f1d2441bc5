"""RETRAIN_* variable names that name no setting: a typo is an error, not silently ignored.

pydantic-settings reads only the variables that match a field and ignores the rest, so
``RETRAIN_PROVIDER__APIKEY`` or ``RETRAIN_S3_BUCKET`` would leave the default in place without a
word. Names in the group syntax (``RETRAIN_<GROUP>__<FIELD>``) must therefore name a setting;
other ``RETRAIN_*`` names (such as the ``RETRAIN_SERVICE_HOST`` Kubernetes injects for a service
called retrain) are left alone unless they are a setting with a single underscore.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import get_args, get_origin

from pydantic import BaseModel

__all__ = ["OTHER_VARIABLES", "unknown_settings"]

PREFIX = "RETRAIN_"
_GROUP = "__"

# Read by retrain without being settings: the checkout the local stack's worker runs from, and
# `retrain automations apply --webhook-url`'s environment variable.
OTHER_VARIABLES = frozenset({"RETRAIN_HOME", "RETRAIN_ALERTS_WEBHOOK_URL"})


def _model(annotation: object) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _field_type(model: type[BaseModel], name: str) -> object | None:
    for field_name, field in model.model_fields.items():
        if field_name.upper() == name:
            return field.annotation
    return None


def _resolves(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether ``parts`` (upper case) name a field of ``model``, a group of them (given as JSON),
    or, below a dict field, one entry (or a field of one entry, for a dict of groups)."""
    if not parts:
        return True
    annotation = _field_type(model, parts[0])
    rest = parts[1:]
    if annotation is None:
        return False
    if (group := _model(annotation)) is not None:
        return _resolves(group, rest)
    if get_origin(annotation) is dict and rest:
        if not rest[0]:
            return False
        entry = _model(get_args(annotation)[1])
        return _resolves(entry, rest[1:]) if entry is not None else len(rest) == 1
    return not rest


def _leaves(model: type[BaseModel], prefix: str, entry_key: str) -> list[str]:
    names = []
    for field_name, field in model.model_fields.items():
        name = prefix + field_name.upper()
        annotation = field.annotation
        if (group := _model(annotation)) is not None:
            names += _leaves(group, name + _GROUP, entry_key)
        elif get_origin(annotation) is dict and (entry := _model(get_args(annotation)[1])) is not None:
            names += _leaves(entry, f"{name}{_GROUP}{entry_key}{_GROUP}", entry_key)
        else:
            names.append(name)
    return names


def _problem(name: str, model: type[BaseModel]) -> str | None:
    """None if ``name`` is fine, else a hint at the setting meant (may be empty)."""
    parts = name.removeprefix(PREFIX).split(_GROUP)
    if len(parts) > 1:
        if _resolves(model, parts):
            return None
        entry_key = (parts[1] if len(parts) > 2 else "") or "NAME"  # the key of a named entry
        close = difflib.get_close_matches(name, _leaves(model, PREFIX, entry_key), n=1, cutoff=0.75)
        return f": did you mean {close[0]}?" if close else ""
    if name in OTHER_VARIABLES or _resolves(model, parts):
        return None
    head, _, tail = parts[0].partition("_")
    if tail and _field_type(model, head) is not None and _resolves(model, [head, *tail.split(_GROUP)]):
        return f": did you mean {PREFIX}{head}{_GROUP}{tail}? (two underscores join a group and its setting)"
    return None


def unknown_settings(names: Iterable[str], model: type[BaseModel], where: str) -> list[str]:
    """One message per name in ``names`` that looks meant for retrain but names no setting.

    Case does not matter, as for pydantic-settings; ``where`` says where the names were found.
    """
    problems = []
    for name in sorted({name.upper() for name in names if name.upper().startswith(PREFIX)}):
        if (problem := _problem(name, model)) is not None:
            problems.append(f"unknown setting {name} in {where}{problem}")
    return problems
