"""The kinds of notification, on their own: `coinlake alerts list --help` offers them as
choices without importing the alerts machinery (pydantic, the stream, storage)."""

from __future__ import annotations

from typing import Literal

Kind = Literal["file_landed", "threshold_crossed"]
FILE_LANDED: Kind = "file_landed"
THRESHOLD_CROSSED: Kind = "threshold_crossed"
