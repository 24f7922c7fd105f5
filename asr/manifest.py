"""JSONL manifests: one utterance a line with NeMo-compatible keys.

Required keys: ``audio_filepath`` (relative paths resolve against the manifest's folder),
``text``; ``duration`` (seconds) is required for training, where batches are sized by it.
Other keys (``id``, ``speaker``, ``voice``, ...) are kept as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .io import atomic_write


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and line."""


@dataclass
class Utterance:
    audio_filepath: str
    text: str
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""   # "manifest.jsonl:LINE" where it was read (not written back)

    @property
    def id(self) -> str:
        return str(self.extra.get("id") or Path(self.audio_filepath).stem)

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        path = Path(self.audio_filepath)
        if relative_to is not None:
            path = path.resolve()
            try:
                path = path.relative_to(relative_to.resolve())
            except ValueError:
                pass
        row: dict[str, Any] = {"audio_filepath": str(path), "text": self.text}
        if self.duration is not None:
            row["duration"] = round(self.duration, 4)
        row.update(self.extra)
        return row


def read_manifest(path: str | Path, require_duration: bool = False, skip_bad: bool = False,
                  errors: list[str] | None = None) -> list[Utterance]:
    """Read a JSONL manifest; audio paths come back absolute.

    A bad line raises `ManifestError` naming ``file:line``; with ``skip_bad`` it is left out and
    its message appended to ``errors`` instead.
    """
    path = Path(path)
    base = path.resolve().parent
    out: list[Utterance] = []
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip():   # trailing newlines are fine
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        try:
            if not line.strip():
                raise ValueError("empty line")
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            audio = row.pop("audio_filepath")
            text = row.pop("text")
            if not isinstance(audio, str) or not isinstance(text, str):
                raise ValueError("audio_filepath and text must be strings")
            duration = row.pop("duration", None)
            if duration is not None:
                duration = float(duration)
                if not duration > 0 or duration == float("inf"):
                    raise ValueError(f"bad duration {duration}")
            elif require_duration:
                raise ValueError("missing duration")
        except (KeyError, ValueError, UnicodeDecodeError, TypeError) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            msg = f"{path}:{lineno}: {what}"
            if not skip_bad:
                raise ManifestError(msg) from None
            if errors is not None:
                errors.append(msg)
            continue
        audio_path = Path(audio)
        if not audio_path.is_absolute():
            audio_path = base / audio_path
        out.append(Utterance(str(audio_path), text, duration, row, f"{path}:{lineno}"))
    return out


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write atomically; audio paths under the manifest's folder are stored relative to it."""
    path = Path(path)
    base = path.parent.resolve() if path.parent != Path("") else Path.cwd()
    with atomic_write(path) as f:
        for utt in utterances:
            f.write(json.dumps(utt.to_json(base), ensure_ascii=False) + "\n")
