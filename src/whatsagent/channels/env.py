"""Channel settings from the environment: an argument wins, else the variable, else the default."""

from __future__ import annotations

import os


def env(name: str) -> str | None:
    """The environment variable `name`, or None when it is unset or empty (an empty value means unset)."""
    value = os.environ.get(name)
    return value if value else None
