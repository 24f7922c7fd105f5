"""Ablation of the text side: plain CTC, shared embeddings, joint LM loss, transfer from a text LM
(initialisation + distillation), and all together; each decoded greedily and with LM fusion.

    python recipes/textside/run.py --out exp/textside            # uses exp/offline_en (run it first)
    python recipes/textside/run.py --out exp/textside --seeds 0 1 2 --minutes 30

Same data, budget (--minutes or --max-steps per run), seed and tokenizer for every variant.
Stages:
  1 lm      train the LSTM LM on --lm-text (never the test sentences) -> OUT/lm/lm.pt
  2 train   every variant x seed -> OUT/<variant>-seed<k>/model.pt
  3 score   greedy and LM-fused beam WER on every --test manifest -> OUT/RESULTS.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from asr.checkpoint import load_checkpoint
from asr.io import atomic_write
from asr.lm import load_lm
from asr.manifest import read_manifest, write_manifest
from asr.model import CTCModel, ModelConfig
from asr.recipe import run_parallel, run_stages, stage_parser, train_command


VARIANTS = ("plain", "shared", "joint", "transfer", "all")


def variants(args, lm: Path) -> dict[str, list[str]]:
    shared = ["--set", "model_overrides.share_embedding=true", "--set", f"model_overrides.embed_dim={args.embed_dim}",
              "--set", f"model_overrides.lm_hidden={args.lm_hidden}"]
    joint = ["--set", f"joint_lm_weight={args.alpha}", "--set", f"lm_text={args.lm_text}"]
    transfer = ["--set", f"init_lm={lm}", "--set", f"distill_weight={args.lam}"]
    return {"plain": [], "shared": shared, "joint": shared + joint, "transfer": shared + transfer,
            "all": shared + joint + transfer}


def stage_lm(args, out: Path) -> None:
    if args.lm:     # reuse a trained LM (main() took embed_dim and lm_hidden from it)
        (out / "lm").mkdir(exist_ok=True)
        shutil.copy(args.lm, out / "lm" / "lm.pt")
        return
    cmd = [sys.executable, "-m", "asr.cli", "lm", "train", str(args.lm_text), "--tokenizer", str(args.tokenizer),
           "--out", str(out / "lm" / "lm.pt"), "--steps", str(args.lm_steps), "--embed-dim", str(args.embed_dim),
           "--hidden", str(args.lm_hidden)]
    if args.dev_text and args.dev_text.is_file():
        cmd += ["--valid-text", str(args.dev_text)]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def stage_train(args, out: Path) -> None:
    jobs, exps = [], []
    extras = variants(args, out / "lm" / "lm.pt")
    for name, seed in runs(args):
        extra = extras[name]
        exp = out / f"{name}-seed{seed}"
        if (exp / "model.pt").exists():
            continue
        exp.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.tokenizer, exp / "tokenizer.pt")    # one vocabulary for every run
        budget = ["--max-minutes", str(args.minutes)] if args.minutes else ["--max-steps", str(args.max_steps)]
        jobs.append((train_command(args.nproc, [
            str(args.train), "--valid", str(args.dev), "--exp-dir", str(exp), "--preset", args.preset,
            "--seed", str(seed), "--epochs", "1000", "--batch-seconds", str(args.batch_seconds), *budget,
            *args.train_args, *extra]), exp / "train.log"))
        exps.append(exp)
    # Runs side by side (--parallel) each get their own log; wall minutes then include the sharing.
    for exp, minutes in zip(exps, run_parallel(jobs, args.parallel)):
        (exp / "wall_minutes.txt").write_text(f"{minutes:.2f}\n")


def runs(args) -> list[tuple[str, int]]:
    """(variant, seed) pairs: every variant with --seeds, plus --repeat-seeds for --repeat-variants."""
    pairs = [(name, seed) for name in VARIANTS for seed in args.seeds]
    return pairs + [(name, seed) for name in args.repeat_variants for seed in args.repeat_seeds
                    if (name, seed) not in pairs]


DECODINGS = ("greedy", "beam+LM")


def decoding_options(decoding: str, lm: Path, args) -> list[str]:
    """`asr evaluate` options for one decoding (greedy, or beam search fused with the LM)."""
    if decoding == "greedy":
        return ["--lm", "none"]
    return ["--lm", str(lm), "--lm-weight", str(args.lm_weight), "--word-score", str(args.word_score)]


def stage_score(args, out: Path) -> None:
    lm = out / "lm" / "lm.pt"
    tests = []
    for test in map(Path, args.test):     # optionally the first N utterances of each test set
        if args.max_test_utterances:
            (out / "tests").mkdir(exist_ok=True)
            write_manifest(out / "tests" / test.name, read_manifest(test)[: args.max_test_utterances])
            test = out / "tests" / test.name
        tests.append(test)
    # One `asr evaluate` per run x test set x decoding; finished ones (summary written) are skipped.
    jobs = []
    for name, seed in runs(args):
        exp = out / f"{name}-seed{seed}"
        for decoding in DECODINGS:
            for test in tests:
                report = exp / f"score-{decoding}"
                if (report / f"wer-summary-{test.stem}.txt").exists():
                    continue
                jobs.append(([sys.executable, "-m", "asr.cli", "evaluate", str(test), "--model", str(exp / "model.pt"),
                              "--threads", "1", "--device", "cpu", "--report", str(report),
                              *decoding_options(decoding, lm, args)], report / f"evaluate-{test.stem}.log"))
    run_parallel(jobs, args.parallel)
    scores, meta, curves = {}, {}, {}    # (variant, test, decoding) -> [(WER, RTF)]; variant -> [...] per seed
    for name, seed in runs(args):
        exp = out / f"{name}-seed{seed}"
        state = load_checkpoint(exp / "model.pt")
        params = CTCModel(ModelConfig.from_dict(state["model_config"])).num_params()
        meta.setdefault(name, []).append((params, float((exp / "wall_minutes.txt").read_text())))
        for decoding in DECODINGS:
            for test in tests:
                summary = (exp / f"score-{decoding}" / f"wer-summary-{test.stem}.txt").read_text().split()
                wer, rtf = float(summary[summary.index("WER") + 1]), float(summary[summary.index("rtf") + 1])
                scores.setdefault((name, test.stem, decoding), []).append((wer, rtf))
        valid = (exp / "valid.csv").read_text().split() if (exp / "valid.csv").exists() else []
        if len(valid) > 1:      # the dev CTC loss curve: more sensitive than WER early in training
            curves.setdefault(name, []).append(
                " ".join(f"{c[0]}: {float(c[3]):.1f} / {100 * float(c[4]):.0f}%" for c in (r.split(",") for r in valid[1:])))
    lines = ["| variant | test set | decoding | WER % (mean over seeds) | per seed | decode RTF | params | train min |",
             "|---|---|---|---|---|---|---|---|"]
    for (name, test, decoding), vals in scores.items():
        params, minutes = meta[name][0][0], statistics.mean(m for _, m in meta[name])
        wers = [w for w, _ in vals]
        lines.append(f"| {name} | {test} | {decoding} | {statistics.mean(wers):.2f} | "
                     f"{' / '.join(f'{w:.2f}' for w in wers)} | {statistics.mean(r for _, r in vals):.4f} | "
                     f"{params / 1e6:.2f}M | {minutes:.1f} |")
    curve_lines = ["| variant | validation during training, step: CTC loss per utterance / greedy WER (a line per seed) |",
                   "|---|---|"]
    curve_lines += [f"| {name} | {' <br> '.join(vals)} |" for name, vals in curves.items()]
    with atomic_write(out / "RESULTS.md") as f:
        f.write("# Text-side ablation\n\nCommand: `python " + " ".join(sys.argv) + "`\n\n" + "\n".join(lines)
                + "\n\n" + "\n".join(curve_lines) + "\n")
    print("\n".join(lines))


STAGES = [("lm", stage_lm), ("train", stage_train), ("score", stage_score)]


def main(argv=None) -> None:
    corpus = Path("exp/offline_en")
    p = stage_parser(__doc__, "exp/textside")
    p.add_argument("--train", type=Path, default=corpus / "train.jsonl")
    p.add_argument("--dev", type=Path, default=corpus / "dev-small.jsonl")
    p.add_argument("--test", nargs="+", default=[str(corpus / "test-unseen.jsonl"), str(corpus / "dev-real.jsonl")])
    p.add_argument("--tokenizer", type=Path, default=corpus / "train" / "tokenizer.pt")
    p.add_argument("--lm-text", type=Path, default=corpus / "text" / "lm.txt")
    p.add_argument("--dev-text", type=Path, default=corpus / "text" / "dev.txt")
    p.add_argument("--lm-steps", type=int, default=3000)
    p.add_argument("--embed-dim", type=int, default=192)
    p.add_argument("--lm-hidden", type=int, default=512)
    p.add_argument("--alpha", type=float, default=0.3, help="joint LM loss weight")
    p.add_argument("--lam", type=float, default=0.5, help="distillation weight")
    p.add_argument("--lm-weight", type=float, default=0.5)
    p.add_argument("--word-score", type=float, default=1.5)
    p.add_argument("--preset", default="small")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for every variant")
    p.add_argument("--repeat-seeds", type=int, nargs="*", default=[], help="more seeds, for --repeat-variants only")
    p.add_argument("--repeat-variants", nargs="*", default=[], choices=VARIANTS)
    p.add_argument("--lm", type=Path, help="reuse this trained LM instead of training one in stage 1")
    p.add_argument("--parallel", type=int, default=1, help="training / scoring runs side by side")
    p.add_argument("--max-test-utterances", type=int, default=0, help="score the first N of each test set (0: all)")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget per run (0: use --max-steps)")
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--batch-seconds", type=float, default=30.0)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra `asr train` options (last)")
    args = p.parse_args(argv)
    if args.lm:
        cfg = load_lm(args.lm)[0].config
        args.embed_dim, args.lm_hidden = cfg.embed_dim, cfg.hidden
    run_stages(STAGES, args)


if __name__ == "__main__":
    main()
