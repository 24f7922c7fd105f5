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
import time
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


def train_command(nproc: int, cli_args: list[str]) -> list[str]:
    """The ``asr train`` command line for `nproc` processes (plain single process when nproc == 1)."""
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    else:
        cmd = [sys.executable]
    return cmd + ["-m", "asr.cli", "train", *cli_args]


def torchrun_train(nproc: int, cli_args: list[str]) -> None:
    """Run ``asr train`` with `nproc` processes and wait for it."""
    cmd = train_command(nproc, cli_args)
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def run_parallel(jobs: Sequence[tuple[list[str], Path]], parallel: int) -> list[float]:
    """Run commands, at most `parallel` at a time, each logging to its own file (one at a time:
    to the terminal, so progress bars show); returns each job's wall minutes (in job order) and
    raises if any failed."""
    pending, running, failed = list(enumerate(jobs)), [], []
    minutes = [0.0] * len(jobs)
    while pending or running:
        while pending and len(running) < parallel:
            i, (cmd, log) = pending.pop(0)
            print(" ".join(cmd) + (f"  > {log}" if parallel > 1 else ""), file=sys.stderr)
            out = None
            if parallel > 1:
                log.parent.mkdir(parents=True, exist_ok=True)
                out = open(log, "w")
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None)
            if out:
                out.close()     # the child has its own copy
            running.append((proc, i, time.time()))
        done = [r for r in running if r[0].poll() is not None]
        for proc, i, start in done:
            running.remove((proc, i, start))
            minutes[i] = (time.time() - start) / 60
            if proc.returncode:
                failed.append(proc)
                where = jobs[i][1] if parallel > 1 else "the output above"
                print(f"error: exit {proc.returncode}, see {where}", file=sys.stderr)
        if not done:
            time.sleep(1)
    if failed:
        raise subprocess.CalledProcessError(failed[0].returncode, failed[0].args)
    return minutes
