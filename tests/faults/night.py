"""One nightly run in a process of its own, for crash tests to kill: ``python -m tests.faults.night DATE``.

Settings come from the environment (``RETRAIN_*``); ``PREFECT_API_URL`` points at the test
session's Prefect server so the process does not start one of its own.
"""

from __future__ import annotations

import sys
from datetime import date

from flows.nightly import nightly_retrain


def main(argv: list[str]) -> int:
    state = nightly_retrain(night=date.fromisoformat(argv[0]), return_state=True)
    sys.stdout.write(f"{state.name}: {state.message}\n")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
