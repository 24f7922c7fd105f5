"""Score models side by side on the recipe's splits: each model's log-probs once per utterance, then
greedy decoding and the word n-gram search (the shipped decoder's settings, `asr.decode.LM_DEFAULTS`).
One process per model, one thread each. Writes OUT/compare/<name>.md (a table, a column per model)
and per-utterance reports in OUT/compare/<name>/<model>/<decoding>/.

    python recipes/offline_en/compare.py --out exp/offline_en --name run19 \\
        --models exp/offline_en/wise-16-enc75/model.pt exp/offline_en/train-whisper-19/model.pt

`asr evaluate <split> --model <model> --lm none` (greedy) and `--lm <n-gram>` give the same figures
per split; this runs each model once for both decodings. With more than one model, the table ends
with a sign test of each against the first, utterance by utterance. Two reports of earlier runs:

    python recipes/offline_en/compare.py --sign-test BEFORE/errs-test-unseen.txt AFTER/errs-test-unseen.txt
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool
from pathlib import Path

import torch

from asr.metrics import WERResult, read_errors, score, sign_test, write_report

SPLITS = ("dev", "dev-short", "dev-ood", "test-unseen", "test-unseen-8k", "test-unseen-short", "test-unseen-short-8k",
          "test-unseen-ood",
          "dev-real", "dev-real-8k", "dev-real-short", "dev-real-short-8k", "test-real-8k")
REAL = ("dev-real", "dev-real-8k", "dev-real-short", "dev-real-short-8k", "test-real-8k")
HELD_OUT = ("test-unseen", "test-unseen-8k")     # the shipping sum: their n-gram WERs added


def _label(model: str) -> str:
    return Path(model).parent.name if Path(model).name == "model.pt" else Path(model).stem


def _errors(result: WERResult) -> dict[str, int]:
    return {u.id: u.errors for u in result.utterances}


def score_model(job: tuple[str, Path, list[str], Path, Path]) -> dict[tuple[str, str], object]:
    """{(split, decoding): WERResult} for one model."""
    from asr.decode import make_decoder
    from asr.inference import load_model, utterance_chunks
    from asr.manifest import read_manifest

    model, lm, splits, out, report = job
    rec = load_model(model, device="cpu", threads=1, lm=lm)
    greedy = make_decoder(rec.tokenizer)
    results = {}
    for split in splits:
        refs, ids, hyps = [], [], {"greedy": [], "n-gram": []}
        for utt in read_manifest(out / f"{split}.jsonl"):
            lps = [rec.log_probs(wav) for _, wav in utterance_chunks(utt)]
            for name, dec in (("greedy", greedy), ("n-gram", rec.decoder)):
                hyps[name].append(" ".join(r.text for lp in lps for r in dec(lp[None], torch.tensor([lp.shape[0]]))
                                           if r.text))
            refs.append(utt.text)
            ids.append(utt.id)
        for name, h in hyps.items():
            results[split, name] = r = score(refs, h, ids)
            write_report(r, report / _label(model) / name, split)
        print(f"{_label(model)} {split}: greedy {100 * results[split, 'greedy'].wer:.2f} "
              f"n-gram {100 * results[split, 'n-gram'].wer:.2f}", file=sys.stderr, flush=True)
    return results


def table(models: list[str], results: list[dict], splits: list[str]) -> str:
    labels = [_label(m) for m in models]
    lines = ["| split | decoding | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for split in splits:
        for dec in ("greedy", "n-gram"):
            cells = [f"{100 * r[split, dec].wer:.2f} ({r[split, dec].errors}/{r[split, dec].n_ref})"
                     for r in results]
            lines.append(f"| {split} | {dec} | " + " | ".join(cells) + " |")
    for dec in ("greedy", "n-gram"):
        real = [s for s in REAL if s in splits]
        if real:
            cells = [str(sum(r[s, dec].errors for s in real)) for r in results]
            lines.append(f"| real word errors ({', '.join(real)}) | {dec} | " + " | ".join(cells) + " |")
    if all(s in splits for s in HELD_OUT):
        cells = [f"{sum(100 * r[s, 'n-gram'].wer for s in HELD_OUT):.2f}" for r in results]
        lines.append(f"| held-out sum ({' + '.join(HELD_OUT)}) | n-gram | " + " | ".join(cells) + " |")
    if len(results) > 1:
        lines += ["", f"Utterances better / worse than {labels[0]}, two-sided sign test p:", "",
                  "| split | decoding | " + " | ".join(labels[1:]) + " |", "|---|---|" + "---|" * (len(labels) - 1)]
        for split in splits:
            for dec in ("greedy", "n-gram"):
                base = _errors(results[0][split, dec])
                tests = [sign_test(base, _errors(r[split, dec])) for r in results[1:]]
                lines.append(f"| {split} | {dec} | " + " | ".join(f"{b} / {w}, p = {p:.3f}" for b, w, p in tests) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="the recipe's output folder (its manifests)")
    p.add_argument("--models", nargs="+")
    p.add_argument("--name", default="compare", help="OUT/compare/<name>.md")
    p.add_argument("--lm", type=Path, help="word n-gram (default: OUT/lm/ngram.arpa.gz)")
    p.add_argument("--splits", default="all", help="comma list, or all (those of SPLITS whose manifest exists)")
    p.add_argument("--jobs", type=int, default=2, help="models scored at once")
    p.add_argument("--sign-test", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                   help="only compare two errs-<split>.txt reports, utterance by utterance")
    args = p.parse_args(argv)
    if args.sign_test:
        try:
            before, after = (read_errors(f) for f in args.sign_test)
            better, worse, pv = sign_test(before, after)
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        print(f"{len(before.keys() & after.keys())} utterances, errors {sum(before.values())} -> {sum(after.values())}: "
              f"{better} better, {worse} worse, sign test p = {pv:.3f}")
        return
    if not args.out or not args.models:
        p.error("--out and --models are needed (or --sign-test BEFORE AFTER)")
    lm = args.lm or args.out / "lm" / "ngram.arpa.gz"
    wanted = SPLITS if args.splits == "all" else args.splits.split(",")
    splits = [s for s in wanted if (args.out / f"{s}.jsonl").exists()]
    if missing := [m for m in args.models if not Path(m).exists()]:
        sys.exit(f"no such model: {', '.join(missing)}")
    if not lm.exists() or not splits:
        sys.exit(f"need {lm} and at least one split's manifest in {args.out}")
    report = args.out / "compare" / args.name
    jobs = [(m, lm, splits, args.out, report) for m in args.models]
    with Pool(min(args.jobs, len(jobs))) as pool:
        results = pool.map(score_model, jobs)
    text = table(args.models, results, splits)
    (args.out / "compare").mkdir(parents=True, exist_ok=True)
    (args.out / "compare" / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
