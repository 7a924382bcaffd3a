"""Shared by the diagnostic scripts: store one entry in data/checkpoints/training_choices.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def store_entry(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Set ``doc[key] = entry`` in the JSON file ``path`` (created if missing; other keys kept), and print it."""
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(entry, indent=1))
