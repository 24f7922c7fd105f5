"""Second-pass rescoring: the word n-gram search's n-best lists, each transcript rescored with the
token LSTM LM, `score + weight * log P_lstm(tokens) + bonus * words`, on a grid of (weight, bonus).
Each split is decoded once; weight 0 is the n-gram search alone. Writes OUT/rescore/<name>.md.

    python recipes/offline_en/rescore.py --out exp/offline_en --model exp/offline_en/ship28/model.pt \\
        --splits dev,dev-short --weights 0,0.1,0.2,0.3,0.5 --bonuses 0,0.5,1.0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from asr.inference import load_model, utterance_chunks
from asr.lm import load_lm, sequence_log_probs
from asr.manifest import read_manifest
from asr.metrics import score


def nbest_lists(rec, lstm, manifest: Path) -> tuple[list[str], list[str], list[list[list[tuple]]]]:
    """Refs, ids and per utterance per chunk the (text, n-gram score, LSTM log-prob, words) of each hypothesis."""
    refs, ids, utts = [], [], []
    for utt in read_manifest(manifest):
        chunks = []
        for _, wav in utterance_chunks(utt):
            lp = rec.log_probs(wav)
            (hyps,) = rec.decoder.nbest(lp[None], torch.tensor([lp.shape[0]]))
            lstm_lp = sequence_log_probs(lstm, [h.tokens for h in hyps])
            chunks.append([(h.text, h.score, l, len(h.text.split())) for h, l in zip(hyps, lstm_lp)])
        refs.append(utt.text)
        ids.append(utt.id)
        utts.append(chunks)
    return refs, ids, utts


def pick(utts, weight: float, bonus: float) -> list[str]:
    """Each utterance's transcript: per chunk, the hypothesis with the best combined score."""
    out = []
    for chunks in utts:
        best = [max(c, key=lambda h: h[1] + weight * h[2] + bonus * h[3])[0] for c in chunks if c]
        out.append(" ".join(t for t in best if t))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the recipe's output folder (its manifests)")
    p.add_argument("--model", required=True)
    p.add_argument("--ngram", type=Path, help="default: OUT/lm/ngram.arpa.gz")
    p.add_argument("--lstm", type=Path, help="default: OUT/lm/lm.pt")
    p.add_argument("--splits", default="dev,dev-short")
    p.add_argument("--weights", default="0,0.1,0.2,0.3,0.5")
    p.add_argument("--bonuses", default="0,0.5,1.0")
    p.add_argument("--name", default="rescore", help="OUT/rescore/<name>.md")
    args = p.parse_args(argv)
    ngram, lstm_path = args.ngram or args.out / "lm/ngram.arpa.gz", args.lstm or args.out / "lm/lm.pt"
    for f in (Path(args.model), ngram, lstm_path, *(args.out / f"{s}.jsonl" for s in args.splits.split(","))):
        if not f.exists():
            sys.exit(f"error: no such file: {f}")
    rec = load_model(args.model, device="cpu", threads=1, lm=ngram)
    lstm, lstm_tok = load_lm(lstm_path)
    if lstm_tok.pieces != rec.tokenizer.pieces:
        sys.exit(f"error: {lstm_path}: the LM's vocabulary differs from the acoustic model's")
    weights = [float(w) for w in args.weights.split(",")]
    bonuses = [float(b) for b in args.bonuses.split(",")]
    lines = ["| split | weight \\ bonus | " + " | ".join(map(str, bonuses)) + " |", "|---|---|" + "---|" * len(bonuses)]
    for split in args.splits.split(","):
        refs, ids, utts = nbest_lists(rec, lstm, args.out / f"{split}.jsonl")
        for w in weights:
            cells = []
            for b in bonuses:
                r = score(refs, pick(utts, w, b), ids)
                cells.append(f"{100 * r.wer:.2f} ({r.errors})")
            lines.append(f"| {split} | {w} | " + " | ".join(cells) + " |")
        print(f"{split}: {len(refs)} utterances", file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    (args.out / "rescore").mkdir(parents=True, exist_ok=True)
    (args.out / "rescore" / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
