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
import time
from pathlib import Path

from asr.checkpoint import load_checkpoint
from asr.inference import evaluate, load_model
from asr.io import atomic_write
from asr.model import CTCModel, ModelConfig
from asr.recipe import run_stages, stage_parser, torchrun_train


def variants(args, lm: Path) -> dict[str, list[str]]:
    shared = ["--set", "model_overrides.share_embedding=true", "--set", f"model_overrides.embed_dim={args.embed_dim}",
              "--set", f"model_overrides.lm_hidden={args.lm_hidden}"]
    joint = ["--set", f"joint_lm_weight={args.alpha}", "--set", f"lm_text={args.lm_text}"]
    transfer = ["--set", f"init_lm={lm}", "--set", f"distill_weight={args.lam}"]
    return {"plain": [], "shared": shared, "joint": shared + joint, "transfer": shared + transfer,
            "all": shared + joint + transfer}


def stage_lm(args, out: Path) -> None:
    cmd = [sys.executable, "-m", "asr.cli", "lm", "train", str(args.lm_text), "--tokenizer", str(args.tokenizer),
           "--out", str(out / "lm" / "lm.pt"), "--steps", str(args.lm_steps), "--embed-dim", str(args.embed_dim),
           "--hidden", str(args.lm_hidden)]
    if args.dev_text and args.dev_text.is_file():
        cmd += ["--valid-text", str(args.dev_text)]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def stage_train(args, out: Path) -> None:
    for name, extra in variants(args, out / "lm" / "lm.pt").items():
        for seed in args.seeds:
            exp = out / f"{name}-seed{seed}"
            if (exp / "model.pt").exists():
                continue
            exp.mkdir(parents=True, exist_ok=True)
            shutil.copy(args.tokenizer, exp / "tokenizer.pt")    # one vocabulary for every run
            budget = ["--max-minutes", str(args.minutes)] if args.minutes else ["--max-steps", str(args.max_steps)]
            start = time.time()
            torchrun_train(args.nproc, [str(args.train), "--valid", str(args.dev), "--exp-dir", str(exp),
                                        "--preset", args.preset, "--seed", str(seed), "--epochs", "1000",
                                        "--batch-seconds", str(args.batch_seconds), *budget, *args.train_args, *extra])
            (exp / "wall_minutes.txt").write_text(f"{(time.time() - start) / 60:.2f}\n")


def stage_score(args, out: Path) -> None:
    lm = out / "lm" / "lm.pt"
    rows = {}
    for name in variants(args, lm):
        for seed in args.seeds:
            exp = out / f"{name}-seed{seed}"
            state = load_checkpoint(exp / "model.pt")
            params = CTCModel(ModelConfig.from_dict(state["model_config"])).num_params()
            minutes = float((exp / "wall_minutes.txt").read_text())
            for test in args.test:
                for decoding, kw in (("greedy", {}), ("beam+LM", {"lm": lm, "lm_weight": args.lm_weight,
                                                                 "word_score": args.word_score})):
                    ev = evaluate(test, load_model(exp / "model.pt", device="cpu", threads=1, **kw), progress=False)
                    rows.setdefault((name, Path(test).stem, decoding), []).append((100 * ev.result.wer, ev.rtf))
            rows.setdefault((name, "_meta", ""), []).append((params, minutes))
    lines = ["| variant | test set | decoding | WER % (mean over seeds) | per seed | decode RTF | params | train min |",
             "|---|---|---|---|---|---|---|---|"]
    for (name, test, decoding), vals in rows.items():
        if test == "_meta":
            continue
        params, minutes = rows[(name, "_meta", "")][0]
        wers = [w for w, _ in vals]
        lines.append(f"| {name} | {test} | {decoding} | {statistics.mean(wers):.2f} | "
                     f"{' / '.join(f'{w:.2f}' for w in wers)} | {statistics.mean(r for _, r in vals):.4f} | "
                     f"{params / 1e6:.2f}M | {minutes:.1f} |")
    with atomic_write(out / "RESULTS.md") as f:
        f.write("# Text-side ablation\n\nCommand: `python " + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n")
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
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--minutes", type=float, default=30.0, help="training budget per run (0: use --max-steps)")
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--batch-seconds", type=float, default=30.0)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra `asr train` options (last)")
    run_stages(STAGES, p.parse_args(argv))


if __name__ == "__main__":
    main()
