"""Transcript output formats: txt, json, srt, vtt, ctm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inference import Transcript

FORMATS = ("txt", "json", "srt", "vtt", "ctm")
MAX_LINE_CHARS = 42      # subtitle line length (the common broadcast guideline)
MAX_CUE_SECONDS = 6.0
PAUSE_SECONDS = 0.6      # a silence this long starts a new cue


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cues(tr: "Transcript") -> list[tuple[float, float, str]]:
    """Group words into subtitle cues: at most 2 lines of MAX_LINE_CHARS, MAX_CUE_SECONDS long,
    broken at pauses."""
    out, cur = [], []
    for w in tr.words:
        if cur:
            text = " ".join(x.word for x in cur + [w])
            if (w.start - cur[-1].end > PAUSE_SECONDS or w.end - cur[0].start > MAX_CUE_SECONDS
                    or len(text) > 2 * MAX_LINE_CHARS):
                out.append(cur)
                cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    return [(c[0].start, c[-1].end, _wrap(" ".join(w.word for w in c))) for c in out]


def _wrap(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    words, best = text.split(), None
    for i in range(1, len(words)):
        a, b = " ".join(words[:i]), " ".join(words[i:])
        cost = max(len(a), len(b))
        if best is None or cost < best[0]:
            best = (cost, a + "\n" + b)
    return best[1] if best else text


def to_srt(tr: "Transcript") -> str:
    return "".join(f"{i}\n{_stamp(s, ',')} --> {_stamp(e, ',')}\n{t}\n\n" for i, (s, e, t) in enumerate(cues(tr), 1))


def to_vtt(tr: "Transcript") -> str:
    return "WEBVTT\n\n" + "".join(f"{_stamp(s, '.')} --> {_stamp(e, '.')}\n{t}\n\n" for s, e, t in cues(tr))


def to_ctm(tr: "Transcript", channel: str = "1") -> str:
    """NIST CTM for sclite: <file> <channel> <start> <duration> <word> <confidence>."""
    file_id = Path(tr.path).stem.replace(" ", "_") or "utt"
    return "".join(f"{file_id} {channel} {w.start:.2f} {max(w.end - w.start, 0.01):.2f} {w.word} {w.confidence:.3f}\n"
                   for w in tr.words)


def to_json(tr: "Transcript") -> str:
    return json.dumps(tr.to_dict(), ensure_ascii=False)


def render(tr: "Transcript", fmt: str) -> str:
    if fmt == "txt":
        return tr.text + "\n"
    if fmt == "json":
        return to_json(tr) + "\n"
    if fmt == "srt":
        return to_srt(tr)
    if fmt == "vtt":
        return to_vtt(tr)
    if fmt == "ctm":
        return to_ctm(tr)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
