"""A short chaos soak: a few nights with API faults, S3 errors and SIGKILLs, then the invariants."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakConfig, local_stack, run_soak

pytestmark = pytest.mark.slow


def test_a_short_soak_keeps_every_invariant(tmp_path: Path, prefect_harness: None) -> None:
    from prefect.settings import PREFECT_API_URL

    config = SoakConfig(
        nights=3, seed=11, kill_rate=0.7, s3_fault_rate=0.05, s3_lost_rate=0.003, reconcile_every=3
    )
    with local_stack(tmp_path, prefect_api_url=str(PREFECT_API_URL.value())) as (env, api_root):
        result = run_soak(config, env, api_root, tmp_path)

    print(result.summary())
    assert result.nights == 3
    assert [check.name for check in result.checks] == [
        "registry history is one linear sequence",
        "no dataset version was trained twice",
        "every landed line is curated or quarantined, every object ingested once",
        "production moved only on a recorded promotion or rollback",
    ]
    assert result.ok, result.summary()
    assert sum(result.s3_faults.values()) > 0
    assert any("/late-" in key for key in result.landed)
