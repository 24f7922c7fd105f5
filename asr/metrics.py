"""Word error rate with jiwer, after `asr.text.normalize_text` on both sides.

`score` returns the totals and a per-utterance breakdown; `write_report` writes icefall-style
files you can read: ``recogs.txt`` (ref/hyp pairs), ``errs.txt`` (per-utterance errors with the
alignment) and ``wer-summary.txt``. `sign_test` compares two systems utterance by utterance
(`read_errors` takes the per-utterance errors back from an ``errs.txt``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import jiwer

from .io import atomic_write, safe_child
from .text import normalize_text


@dataclass
class UtteranceScore:
    id: str
    ref: str
    hyp: str
    sub: int
    dele: int
    ins: int
    n_ref: int

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins


@dataclass
class WERResult:
    sub: int = 0
    dele: int = 0
    ins: int = 0
    n_ref: int = 0
    utterances: list[UtteranceScore] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def wer(self) -> float:
        """Fraction (0.1234 = 12.34%); insertions against an empty reference count as errors."""
        return self.errors / self.n_ref if self.n_ref else float(self.errors > 0)


def _words(text: str) -> str:
    # jiwer rejects empty strings; a single space keeps an empty side countable.
    return normalize_text(text) or " "


def score(refs: list[str], hyps: list[str], ids: list[str] | None = None) -> WERResult:
    """Score normalised hypotheses against normalised references."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    ids = ids or [str(i) for i in range(len(refs))]
    total = WERResult()
    for uid, ref, hyp in zip(ids, refs, hyps):
        r, h = normalize_text(ref), normalize_text(hyp)
        if not r:
            s, d, i = 0, 0, len(h.split())
        else:
            out = jiwer.process_words(r, h or "")
            s, d, i = out.substitutions, out.deletions, out.insertions
        u = UtteranceScore(uid, r, h, s, d, i, len(r.split()))
        total.utterances.append(u)
        total.sub += s
        total.dele += d
        total.ins += i
        total.n_ref += u.n_ref
    return total


def summary_line(result: WERResult, rtf: float | None = None) -> str:
    """``WER 12.34 SUB 10 DEL 3 INS 2 RTF 0.0042 N 252`` (N = utterances scored)."""
    line = f"WER {100 * result.wer:.2f} SUB {result.sub} DEL {result.dele} INS {result.ins}"
    if rtf is not None:
        line += f" RTF {rtf:.4f}"
    return line + f" N {len(result.utterances)}"


def write_report(result: WERResult, out_dir: str | Path, name: str = "test", extra: str = "") -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(safe_child(out_dir, f"recogs-{name}.txt")) as f:
        for u in result.utterances:
            f.write(f"{u.id}:\tref={u.ref}\n{u.id}:\thyp={u.hyp}\n")
    with atomic_write(safe_child(out_dir, f"errs-{name}.txt")) as f:
        f.write(f"%WER {100 * result.wer:.2f} [ {result.errors} / {result.n_ref}, {result.ins} ins, "
                f"{result.dele} del, {result.sub} sub ]\n\nPER-UTTERANCE (errors / reference words):\n")
        for u in sorted(result.utterances, key=lambda u: -u.errors):
            f.write(f"{u.id}\t{u.errors}/{u.n_ref}\tS={u.sub} D={u.dele} I={u.ins}\n")
            if u.errors and u.ref:
                f.write(jiwer.visualize_alignment(jiwer.process_words(u.ref, u.hyp or ""), show_measures=False)
                        .split("\n", 1)[-1])
                f.write("\n")
    with atomic_write(safe_child(out_dir, f"wer-summary-{name}.txt")) as f:
        f.write(summary_line(result) + "\n" + extra)


def read_errors(path: str | Path) -> dict[str, int]:
    """{utterance id: word errors} from an ``errs-*.txt`` written by `write_report`."""
    rows = re.findall(r"^(\S+)\t(\d+)/\d+\tS=", Path(path).read_text(), flags=re.M)
    if not rows:
        raise ValueError(f"{path}: no per-utterance lines (not an errs file of write_report?)")
    return {uid: int(n) for uid, n in rows}


def sign_test(before: dict[str, int], after: dict[str, int]) -> tuple[int, int, float]:
    """(utterances with fewer errors after, with more, two-sided exact sign test p) over the
    utterances both systems scored; ties are left out."""
    common = before.keys() & after.keys()
    if not common:
        raise ValueError("the two systems share no utterance id")
    better = sum(after[u] < before[u] for u in common)
    worse = sum(after[u] > before[u] for u in common)
    n, k = better + worse, min(better, worse)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return better, worse, p
