"""The configuration reference, generated from the settings model so the README cannot drift from it.

`settlerd config reference` prints it; a test checks the README holds exactly this text.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from settlerd.config import Settings

_DICT_KEYS = {"chains": "<name>", "counterparties": "<node_id>"}


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value: Any = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0 and seconds >= size:
                return f"`{seconds // size}{unit}`"
        return f"`{seconds}s`"
    if isinstance(value, BaseModel) or value in ({}, []):
        return ""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        nested = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if nested is not None:
            rows.extend(_rows(nested, f"{path}."))
            continue
        if name in _DICT_KEYS:
            value_type = getattr(annotation, "__args__", (None, None))[1]
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                rows.extend(_rows(value_type, f"{path}.{_DICT_KEYS[name]}."))
                continue
        rows.append((path, _default(info), (info.description or "").replace("|", "\\|")))
    return rows


def render() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{path}` | {default} | {meaning} |" for path, default, meaning in _rows(Settings, "")]
    return "\n".join(lines) + "\n"
