"""Registry: which model each alias (``production``, ``candidate``, ...) points to, and why. Every
change is an event appended create-only to a log in S3, the aliases' state is derived from it
(through periodic snapshots), and serving resolves an alias through a small cached read path.
"""

from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.log import RegistryLog
from retrain.registry.records import ALIAS_PATTERN, Action, ModelRecord, RegistryEvent
from retrain.registry.registry import Registry
from retrain.registry.resolver import (
    DEFAULT_TTL_SECONDS,
    AliasReader,
    CachedResolver,
    resolve_model,
    resolve_record,
    resolver_for,
)
from retrain.registry.state import AliasHeads, RegistryState

__all__ = [
    "ALIAS_PATTERN",
    "Action",
    "AliasHeads",
    "AliasReader",
    "CANDIDATE",
    "CachedResolver",
    "DEFAULT_TTL_SECONDS",
    "ModelRecord",
    "PRODUCTION",
    "Registry",
    "RegistryEvent",
    "RegistryLog",
    "RegistryState",
    "resolve_model",
    "resolve_record",
    "resolver_for",
]
