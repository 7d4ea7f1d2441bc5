"""Who acts from the command line, as recorded in the registry and on a broken lease."""

from __future__ import annotations

import getpass

__all__ = ["cli_actor"]


def cli_actor() -> str:
    """``cli:{login name}``, or ``cli`` where the login name is unknown (e.g. a container's uid)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"
