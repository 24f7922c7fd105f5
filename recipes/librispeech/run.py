"""LibriSpeech recipe: prepare -> tokenizer -> train -> decode -> score, with resumable stages.

For a user with the corpus on disk (https://www.openslr.org/12: train-clean-100, dev-clean,
test-clean, ... unpacked under one folder) and, ideally, a GPU:

    python recipes/librispeech/run.py --corpus /data/LibriSpeech --out exp/librispeech
    python recipes/librispeech/run.py --corpus /data/LibriSpeech --out exp/librispeech --stage 3   # resume at training
    torchrun is used when --nproc > 1 (one process per GPU, nccl; or gloo on CPU)

Stages:
  1 prepare    asr.prepare.librispeech_to_manifest for every subset given in --train/--dev/--test
  2 tokenizer  sentencepiece BPE on the training transcripts
  3 lm         LSTM LM on --lm-text (e.g. librispeech-lm-norm.txt) or, without it, the transcripts
  4 train      asr train (preset --preset, default medium) on the training subsets
  5 score      greedy, beam and beam + LM WER on the dev and test subsets -> OUT/RESULTS.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from asr.inference import evaluate, load_model
from asr.io import atomic_write
from asr.manifest import read_manifest, write_manifest
from asr.prepare import librispeech_to_manifest
from asr.recipe import run_stages, stage_parser, torchrun_train
from asr.text import normalize_text
from asr.tokenizer import train_tokenizer


def stage_prepare(args, out: Path) -> None:
    for subset in args.train + args.dev + args.test:
        n = librispeech_to_manifest(args.corpus / subset, out / f"{subset}.jsonl")
        print(f"{subset}: {n} utterances", file=sys.stderr)
    utts = [u for s in args.train for u in read_manifest(out / f"{s}.jsonl")]
    write_manifest(out / "train.jsonl", utts)


def stage_tokenizer(args, out: Path) -> None:
    texts = [normalize_text(u.text) for u in read_manifest(out / "train.jsonl")]
    tok = train_tokenizer(texts, "bpe", args.vocab_size)
    with atomic_write(out / "train" / "tokenizer.pt", "wb") as f:
        torch.save(tok.to_dict(), f)


def stage_lm(args, out: Path) -> None:
    text = args.lm_text
    if text is None:
        text = out / "lm-text.txt"
        text.write_text("\n".join(u.text for u in read_manifest(out / "train.jsonl")) + "\n")
    cmd = [sys.executable, "-m", "asr.cli", "lm", "train", str(text), "--tokenizer", str(out / "train" / "tokenizer.pt"),
           "--out", str(out / "lm" / "lm.pt"), "--steps", str(args.lm_steps), "--threads", "0"]
    subprocess.run(cmd, check=True)


def stage_train(args, out: Path) -> None:
    torchrun_train(args.nproc, [
        str(out / "train.jsonl"), "--valid", str(out / f"{args.dev[0]}.jsonl"), "--exp-dir", str(out / "train"),
        "--preset", args.preset, "--epochs", str(args.epochs), "--batch-seconds", str(args.batch_seconds),
        "--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps), *args.train_args])


def stage_score(args, out: Path) -> None:
    lines = ["| subset | decoding | WER % | SUB | DEL | INS | RTF | N |", "|---|---|---|---|---|---|---|---|"]
    for subset in args.dev + args.test:
        for name, kw in (("greedy", {}), (f"beam {args.beam_size}", {"beam_size": args.beam_size}),
                         (f"beam {args.beam_size} + LM", {"beam_size": args.beam_size, "lm": out / "lm" / "lm.pt"})):
            ev = evaluate(out / f"{subset}.jsonl", load_model(out / "train" / "model.pt", **kw),
                          report_dir=out / "score" / name.replace(" ", "").replace("+", "_"), progress=True)
            r = ev.result
            lines.append(f"| {subset} | {name} | {100 * r.wer:.2f} | {r.sub} | "
                         f"{r.dele} | {r.ins} | {ev.rtf:.4f} | {len(r.utterances)} |")
            print(f"{subset} {name}: {ev.summary()}", file=sys.stderr)
    with atomic_write(out / "RESULTS.md") as f:
        f.write("# LibriSpeech results\n\nCommand: `" + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n")


STAGES = [("prepare", stage_prepare), ("tokenizer", stage_tokenizer), ("lm", stage_lm), ("train", stage_train),
          ("score", stage_score)]


def main(argv=None) -> None:
    p = stage_parser(__doc__, "exp/librispeech")
    p.add_argument("--corpus", type=Path, required=True, help="folder holding the LibriSpeech subsets")
    p.add_argument("--train", nargs="+", default=["train-clean-100"])
    p.add_argument("--dev", nargs="+", default=["dev-clean"])
    p.add_argument("--test", nargs="+", default=["test-clean"])
    p.add_argument("--vocab-size", type=int, default=500)
    p.add_argument("--preset", default="medium")
    p.add_argument("--nproc", type=int, default=max(torch.cuda.device_count(), 1))
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-seconds", type=float, default=600.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-steps", type=int, default=5000)
    p.add_argument("--beam-size", type=int, default=8)
    p.add_argument("--lm-text", type=Path, default=None, help="LM training text (default: the transcripts)")
    p.add_argument("--lm-steps", type=int, default=3000)
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="extra `asr train` options (last on the line), e.g. --set keep_last=10")
    run_stages(STAGES, p.parse_args(argv))


if __name__ == "__main__":
    main()
