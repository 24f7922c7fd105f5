"""Numbered, resumable recipe stages (icefall's prepare.sh pattern, in Python).

    stages = [("prepare", prepare), ("train", train)]     # each fn(args, out_dir)
    parser = stage_parser(__doc__); ...add recipe options...
    run_stages(stages, parser.parse_args())

A finished stage writes ``OUT/.done/<n>``; rerunning skips it unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence


def stage_parser(doc: str | None, default_out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(default_out), help="experiment folder")
    p.add_argument("--stage", type=int, default=1, help="first stage to run")
    p.add_argument("--stop-stage", type=int, default=100, help="last stage to run")
    p.add_argument("--force", action="store_true", help="rerun stages already marked done")
    return p


def run_stages(stages: Sequence[tuple[str, Callable]], args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for n, (name, fn) in enumerate(stages, start=1):
        if not args.stage <= n <= args.stop_stage:
            continue
        mark = args.out / ".done" / str(n)
        if mark.exists() and not args.force:
            print(f"stage {n} ({name}): done, skipped", file=sys.stderr)
            continue
        print(f"stage {n} ({name})", file=sys.stderr)
        fn(args, args.out)
        mark.parent.mkdir(exist_ok=True)
        mark.write_text(json.dumps(vars(args), default=str))


def torchrun_train(nproc: int, cli_args: list[str]) -> None:
    """Run ``asr train`` with `nproc` processes (plain single process when nproc == 1)."""
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    else:
        cmd = [sys.executable]
    cmd += ["-m", "asr.cli", "train", *cli_args]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
