"""Dataclass configs that round-trip through plain dicts (as stored inside checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, fields


class DictConfig:
    """Mixin for dataclasses: `to_dict()`, and `from_dict()` that ignores keys it does not know
    (so a checkpoint written by a newer version with extra fields still loads)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
