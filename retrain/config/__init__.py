"""Config: every setting of retrain as one pydantic-settings model read from ``RETRAIN_*``
variables and ``.env``, grouped by the services retrain talks to and by pipeline stage; a
misnamed variable is an error, the configuration reference is generated from the model, and
credentials are kept out of what a person or a log can read.
"""

from retrain.config.redact import MASK, redact
from retrain.config.reference import BEGIN_MARKER, END_MARKER, configuration_reference
from retrain.config.services import LocalStackSettings, ProviderSettings, S3Settings
from retrain.config.setting_names import OTHER_VARIABLES, unknown_settings
from retrain.config.settings import Settings, get_settings, load_settings
from retrain.config.stage_settings import (
    DatasetSettings,
    EvaluationSettings,
    IngestSettings,
    OrchestrationSettings,
    TrainingSettings,
    ValidationSettings,
)

__all__ = [
    "BEGIN_MARKER",
    "DatasetSettings",
    "END_MARKER",
    "EvaluationSettings",
    "IngestSettings",
    "LocalStackSettings",
    "MASK",
    "OTHER_VARIABLES",
    "OrchestrationSettings",
    "ProviderSettings",
    "S3Settings",
    "Settings",
    "TrainingSettings",
    "ValidationSettings",
    "configuration_reference",
    "get_settings",
    "load_settings",
    "redact",
    "unknown_settings",
]
