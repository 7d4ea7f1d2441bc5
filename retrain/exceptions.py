"""Every error retrain raises on purpose.

The CLI prints these as one line (``--debug`` shows the traceback); everything else
is a bug. Foreign errors (botocore, openai, Great Expectations) are translated at the
module that calls them and re-raised ``from`` the original.

    RetrainError
    ├── ConfigError                  settings missing or invalid
    ├── StorageError                 S3 / object store
    │   ├── BucketNotFound
    │   ├── ObjectNotFound
    │   ├── AlreadyExists            a create-only write lost (HTTP 412)
    │   └── StorageUnavailable       endpoint unreachable, no or expired credentials
    │       └── StorageAccessDenied  credentials or policy refused (403): not transient
    ├── DataError                    input that cannot be used
    │   └── BatchRejected            a batch-level gate failed; nothing was uploaded
    ├── ProviderError                the OpenAI-compatible API
    │   ├── ProviderUnavailable      connection, timeouts, 5xx after retries
    │   ├── RateLimited              429s outlasted the retries (transient: retry later)
    │   ├── QuotaExceeded            daily, concurrent-job or credit limits (not transient)
    │   ├── FineTuneFailed           the job failed, was cancelled or blocked
    │   │   └── FineTuneFailedPermanently  for a reason another try on the same data meets again
    │   └── BudgetExceeded           the estimated cost is above the configured limit
    ├── EvaluationError
    │   └── TooManyItemErrors        more eval items failed than allowed (transient: run again)
    ├── RunInProgress                another nightly run holds the lease (retrain.ingest.lease)
    └── RegistryError
        ├── UnknownAlias
        ├── UnknownModel
        └── RegistryConflict         another writer moved the alias first
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BatchRejected",
    "BucketNotFound",
    "BudgetExceeded",
    "ConfigError",
    "DataError",
    "EvaluationError",
    "FineTuneFailed",
    "FineTuneFailedPermanently",
    "ObjectNotFound",
    "ProviderError",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "RegistryConflict",
    "RegistryError",
    "RetrainError",
    "RunInProgress",
    "StorageError",
    "StorageAccessDenied",
    "StorageUnavailable",
    "TooManyItemErrors",
    "UnknownAlias",
    "UnknownModel",
]


class RetrainError(Exception):
    """Base class: the message is one line that says what is wrong and how to fix it."""


class ConfigError(RetrainError):
    pass


class StorageError(RetrainError):
    pass


class BucketNotFound(StorageError):
    pass


class ObjectNotFound(StorageError):
    pass


class AlreadyExists(StorageError):
    pass


class StorageUnavailable(StorageError):
    pass


class StorageAccessDenied(StorageUnavailable):
    """S3 refused the request (403: wrong keys, a signature mismatch, or a policy that does not
    allow it). Readers that tolerate an unavailable store tolerate it too; tasks never retry it,
    since the same request is refused again until someone changes the credentials or policy."""


class DataError(RetrainError):
    pass


class BatchRejected(DataError):
    pass


class ProviderError(RetrainError):
    pass


class ProviderUnavailable(ProviderError):
    pass


class RateLimited(ProviderError):
    pass


class QuotaExceeded(ProviderError):
    pass


class FineTuneFailed(ProviderError):
    pass


class FineTuneFailedPermanently(FineTuneFailed):
    pass


class BudgetExceeded(ProviderError):
    pass


class EvaluationError(RetrainError):
    pass


class TooManyItemErrors(EvaluationError):
    pass


class RunInProgress(RetrainError):
    pass


class RegistryError(RetrainError):
    pass


class UnknownAlias(RegistryError):
    pass


class UnknownModel(RegistryError):
    pass


class RegistryConflict(RegistryError):
    pass
