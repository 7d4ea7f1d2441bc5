"""The Great Expectations suite of a batch: loaded from its JSON file, run over feature frames.

The suite file (``expectations/chat_batch.json``, reviewed like code) is the source of truth for
the data checks. Each expectation says in ``meta.level`` what it is:

* ``row``: a per-row check; each failing row is quarantined with the reason code
  ``expectation:<type>:<column>``.
* ``batch``: a gate over the whole batch (token-length distribution, duplicate rate, share of
  examples with a system prompt, ...); a failure stops the run. ``meta.gate`` names it in
  reports (default ``expectation:<type>:<column>``).

``great_expectations`` takes 5-7 s to import, so it is imported lazily, on first use. Frames use
a plain 0..n-1 index: index columns make COMPLETE results very slow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrain.exceptions import ConfigError, DataError
from retrain.validate.reason import Reason

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GateCheck", "SuiteRunner"]

logger = logging.getLogger(__name__)

_LEVELS = ("row", "batch")


@dataclass
class GateCheck:
    """One batch-level gate: its outcome, what was seen, the bound it was held to, and what that
    means in a few words (``detail``; ``message`` adds the gate's name)."""

    name: str
    passed: bool
    observed: float | int
    threshold: float | int
    detail: str
    skipped: bool = False

    @property
    def message(self) -> str:
        return f"{self.name}: {self.detail}"

    @property
    def result(self) -> str:
        """``pass``, ``FAIL`` or ``skipped`` (a gate that was not checked passes, but never says so)."""
        return "skipped" if self.skipped else "pass" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def _label(expectation: dict[str, Any]) -> str:
    column = expectation.get("kwargs", {}).get("column")
    return f"expectation:{expectation['type']}" + (f":{column}" if column else "")


def _gate_name(expectation: dict[str, Any]) -> str:
    return str(expectation.get("meta", {}).get("gate") or _label(expectation))


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _describe_batch_result(kwargs: dict[str, Any], observed: Any) -> tuple[float | int, float | int, str]:
    """(observed, threshold, detail) for a failed or passed batch-level expectation."""
    if isinstance(observed, dict) and "values" in observed:
        ranges = kwargs["quantile_ranges"]
        parts = []
        worst = (_number(observed["values"][-1]), _number(ranges["value_ranges"][-1][1]))
        for quantile, value, (low, high) in zip(
            ranges["quantiles"], observed["values"], ranges["value_ranges"], strict=False
        ):
            ok = (low is None or value >= low) and (high is None or value <= high)
            parts.append(f"q{quantile:g}={value:g} in [{low}, {high}]" + ("" if ok else " (out)"))
            if not ok:
                worst = (_number(value), _number(high if high is not None and value > high else low))
        return worst[0], worst[1], ", ".join(parts)
    value = _number(observed)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    threshold = high if high is not None and value > high else low if low is not None else high
    if low is None:
        allowed = f"at most {high:g}"
    elif high is None:
        allowed = f"at least {low:g}"
    else:
        allowed = f"allowed [{low:g}, {high:g}]"
    return value, _number(threshold), f"observed {value:.4g}, {allowed}"


class SuiteRunner:
    """Runs one suite file's row-level and batch-level expectations over pandas frames."""

    def __init__(self, suite_path: Path) -> None:
        try:
            raw = json.loads(Path(suite_path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(
                f"expectation suite {suite_path} not found: run from the project root or set "
                "RETRAIN_VALIDATION__SUITE_PATH"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigError(f"expectation suite {suite_path} is not readable JSON: {exc}") from exc
        expectations = raw.get("expectations")
        if not isinstance(expectations, list):
            raise ConfigError(f"expectation suite {suite_path} has no 'expectations' list")
        for expectation in expectations:
            level = expectation.get("meta", {}).get("level")
            if level not in _LEVELS:
                raise ConfigError(
                    f"expectation {_label(expectation)} in {suite_path} needs meta.level 'row' or 'batch'"
                )
        self.path = Path(suite_path)
        self.name = str(raw.get("name") or self.path.stem)
        self._raw = raw
        self._context: Any = None
        self._batch_definition: Any = None
        self._suites: dict[str, Any] = {}

    def expectations(self, level: str) -> list[dict[str, Any]]:
        return [e for e in self._raw["expectations"] if e.get("meta", {}).get("level") == level]

    def columns(self, level: str, available: Sequence[str]) -> list[str]:
        """The columns of ``available`` that a level's expectations read, in that order; refuses
        (ConfigError, at start-up) an expectation that reads a column its frames lack."""
        read: set[str] = set()
        for expectation in self.expectations(level):
            column = expectation.get("kwargs", {}).get("column")
            if column is None:
                continue
            if column not in available:
                raise ConfigError(
                    f"expectation {_label(expectation)} in {self.path} reads column {column!r}, which "
                    f"{level}-level expectations cannot: use one of {', '.join(available)}"
                )
            read.add(column)
        return [name for name in available if name in read]

    def _suite(self, level: str) -> Any:
        if level not in self._suites:
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            if self._context is None:
                # No default docs site in a temporary folder: Data Docs go to our own site only.
                in_memory = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
                self._context = gx.get_context(
                    mode="ephemeral", project_config=DataContextConfig(store_backend_defaults=in_memory)
                )
                self._context.enable_analytics(False)
                self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
                source = self._context.data_sources.add_pandas("retrain")
                asset = source.add_dataframe_asset("batch")
                self._batch_definition = asset.add_batch_definition_whole_dataframe("whole")
            spec = {**self._raw, "name": f"{self.name}.{level}", "expectations": self.expectations(level)}
            spec.pop("id", None)
            try:
                suite = gx.ExpectationSuite(**spec)
            except Exception as exc:  # GX raises many types for a malformed suite
                raise ConfigError(f"expectation suite {self.path} is invalid: {exc}") from exc
            self._suites[level] = self._context.suites.add(suite)
        return self._suites[level]

    def _validate(self, level: str, frame: pd.DataFrame) -> Any:
        suite = self._suite(level)
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        for item in result.results:
            item.success = bool(item.success)
            info = item.exception_info or {}
            if info.get("raised_exception"):
                raise DataError(
                    f"{self.path}: {_label(item.expectation_config.to_json_dict())} could not run: "
                    f"{info.get('exception_message')} (check its column and kwargs)"
                )
        return result

    def check_rows(self, frame: pd.DataFrame) -> dict[int, list[Reason]]:
        """Reasons per failing row position (the frame must have a 0..n-1 index)."""
        failures: dict[int, list[Reason]] = {}
        if frame.empty or not self.expectations("row"):
            return failures
        for item in self._validate("row", frame).results:
            if item.success:
                continue
            config = item.expectation_config.to_json_dict()
            label = _label(config)
            why = config.get("meta", {}).get("why", "")
            for row in item.result.get("unexpected_index_list") or []:
                failures.setdefault(int(row), []).append(Reason(label, why))
        return failures

    def check_batch(self, frame: pd.DataFrame, data_docs_dir: Path | None = None) -> list[GateCheck]:
        """One GateCheck per batch-level expectation; Data Docs built into data_docs_dir if given."""
        return self.check_batch_with_docs(frame, data_docs_dir)[0]

    def check_batch_with_docs(
        self, frame: pd.DataFrame, data_docs_dir: Path | None = None
    ) -> tuple[list[GateCheck], Path | None]:
        """``check_batch`` plus the index.html of the Data Docs it built (None if it built none).

        With no rows to measure the checks are skipped and no Data Docs are built.
        """
        if not self.expectations("batch"):
            return [], None
        if frame.empty:
            skipped = [
                GateCheck(_gate_name(e), True, 0, 0, "no examples to measure", skipped=True)
                for e in self.expectations("batch")
            ]
            return skipped, None
        result = self._validate("batch", frame)
        checks = []
        for item in result.results:
            config = item.expectation_config.to_json_dict()
            observed, threshold, detail = _describe_batch_result(
                config["kwargs"], item.result.get("observed_value")
            )
            checks.append(GateCheck(_gate_name(config), bool(item.success), observed, threshold, detail))
        index = self.build_data_docs(result, data_docs_dir) if data_docs_dir is not None else None
        return checks, index

    def build_data_docs(self, result: Any, directory: Path) -> Path:
        """Write the Data Docs site of a batch-level result into directory; returns its index.html."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        context = self._context
        if "retrain" not in (context.get_config().data_docs_sites or {}):
            context.add_data_docs_site(
                site_name="retrain",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(directory),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=f"{self.name}.batch"),
            run_id=RunIdentifier(run_name="retrain-validate", run_time=datetime.now(UTC)),
            batch_identifier="batch",
        )
        context.validation_results_store.store_validation_results(result, identifier)
        context.build_data_docs(site_names=["retrain"])
        index = directory / "index.html"
        logger.debug("Data Docs written to %s", index)
        return index
