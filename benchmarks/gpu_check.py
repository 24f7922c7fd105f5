"""GPU correctness and speed check: run on a machine with CUDA, prints a table and writes it.

    python benchmarks/gpu_check.py --output GPU.md

Checks (each row says pass/fail or a figure):
1. CPU and CUDA give the same log-probs (fp32) for both encoders, and a padded batch on CUDA
   gives each utterance's own output.
2. The shipped default model transcribes the bundled samples on CUDA as it does on the CPU.
3. `asr.train` trains on CUDA (bf16 autocast) on a synthetic corpus, resumes from its
   checkpoint, and the result loads and decodes on the CPU.
4. Speed: encoder inference and training steps per second of audio, CUDA fp32 / bf16.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from asr.inference import Recognizer  # noqa: E402
from asr.model import PRESETS, CTCModel  # noqa: E402
from asr.trainer import TrainConfig, train  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


def row(check: str, result: str, detail: str = "") -> None:
    ROWS.append((check, result, detail))
    print(f"{check:55s} {result:10s} {detail}", flush=True)


def equivalence(dev: torch.device) -> None:
    for preset in ("small", "whisper_tiny", "whisper_tiny_adapter"):
        torch.manual_seed(0)
        model = CTCModel(PRESETS[preset](vocab_size=256)).eval()
        x = torch.randn(3, 1000, 80) - 4
        lengths = torch.tensor([1000, 700, 333])
        with torch.no_grad():
            ref, _ = model(x, lengths)
            got, out_len = model.to(dev)(x.to(dev), lengths.to(dev))
            alone, _ = model(x[2:, :333].to(dev), lengths[2:].to(dev))
        diff = (ref.log_softmax(-1) - got.float().cpu().log_softmax(-1)).abs().max().item()
        pad = (alone[0] - got[2, :out_len[2]]).abs().max().item()
        row(f"{preset}: CPU vs CUDA log-probs (fp32), max abs diff", "pass" if diff < 1e-3 else "FAIL", f"{diff:.2e}")
        row(f"{preset}: padded batch vs alone on CUDA, max abs diff", "pass" if pad < 1e-3 else "FAIL", f"{pad:.2e}")


def default_model(dev: torch.device) -> None:
    wavs = sorted((ROOT / "data" / "samples").glob("*.wav"))
    cpu, gpu = Recognizer.from_file(device="cpu"), Recognizer.from_file(device=str(dev))
    for wav in wavs:
        a, b = cpu.transcribe(wav).text, gpu.transcribe(wav).text
        row(f"default model, {wav.name}: CUDA text == CPU text", "pass" if a == b else "FAIL", repr(b[:60]))


def training(dev: torch.device, tmp: Path) -> None:
    spec = importlib.util.spec_from_file_location("conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    train_m = conftest.make_tone_corpus(tmp / "tones", 60, seed=0)
    valid_m = conftest.make_tone_corpus(tmp / "tones", 12, seed=1, name="valid")
    for preset in ("tiny", "whisper_tiny"):
        exp = tmp / f"exp-{preset}"
        base = dict(train_manifest=str(train_m), valid_manifest=str(valid_m), exp_dir=str(exp), preset=preset,
                    tokenizer="char", batch_seconds=20, lr=2e-3 if preset == "tiny" else 1e-3, warmup_steps=20,
                    epochs=1000, checkpoint_every=40, augment=False, specaugment=False, device="auto", log_every=5)
        if preset == "whisper_tiny":
            base["model_overrides"] = {"n_layers": 2}
        t = time.time()
        train(TrainConfig(**base, max_steps=120))
        first = time.time() - t
        train(TrainConfig(**base, max_steps=160))      # resumes from checkpoint-120
        rows = (exp / "train.csv").read_text().splitlines()
        steps = [int(r.split(",")[0]) for r in rows[1:]]
        losses = [float(r.split(",")[2]) for r in rows[1:]]
        resumed = steps == sorted(steps) and steps[-1] == 160 and len(set(steps)) == len(steps)
        row(f"{preset}: train 120 steps on CUDA (bf16), loss first -> last",
            "pass" if losses[-1] < 0.7 * losses[0] else "FAIL", f"{losses[0]:.1f} -> {losses[-1]:.1f} in {first:.0f} s")
        row(f"{preset}: resume 120 -> 160 steps, no step twice", "pass" if resumed else "FAIL", f"{len(steps)} log rows")
        model, _ = model_from_checkpoint(load_checkpoint(exp / "model.pt"))
        valid_csv = (exp / "valid.csv").read_text().splitlines()
        row(f"{preset}: model.pt loads on the CPU; last valid WER", "pass", valid_csv[-1].split(",")[-1][:8]
            if valid_csv else "")


def speed(dev: torch.device) -> None:
    for preset in ("small", "whisper_tiny", "whisper_tiny_adapter"):
        torch.manual_seed(0)
        model = CTCModel(PRESETS[preset](vocab_size=256)).to(dev)
        b, secs = 32, 20
        x = torch.randn(b, secs * 100, 80, device=dev) - 4
        lengths = torch.full((b,), secs * 100, device=dev)
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            ctx = torch.autocast("cuda", dtype=dtype) if dtype else torch.autocast("cuda", enabled=False)
            model.eval()
            with torch.no_grad(), ctx:
                for _ in range(3):
                    model(x, lengths)
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(10):
                    model(x, lengths)
                torch.cuda.synchronize()
            inf = 10 * b * secs / (time.perf_counter() - t)
            model.train()
            opt = torch.optim.AdamW(model.parameters(), 1e-4)
            tgt = torch.randint(1, 256, (b, 60), device=dev)
            for i in range(8):
                if i == 3:
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                with ctx:
                    logits, out_len = model(x, lengths)
                loss = torch.nn.functional.ctc_loss(logits.float().log_softmax(-1).transpose(0, 1), tgt, out_len,
                                                    torch.full((b,), 60, device=dev))
                opt.zero_grad()
                loss.backward()
                opt.step()
            torch.cuda.synchronize()
            tr = 5 * b * secs / (time.perf_counter() - t)
            row(f"{preset} ({model.num_params() / 1e6:.1f}M): speed {label}, batch {b} x {secs} s", "figure",
                f"inference {inf:,.0f} s/s (RTF {1 / inf:.1e}); training {tr:,.0f} s/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default="GPU.md")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device here")
    dev = torch.device("cuda")
    head = (f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(head)
    equivalence(dev)
    default_model(dev)
    with tempfile.TemporaryDirectory() as tmp:
        training(dev, Path(tmp))
    speed(dev)
    lines = [f"Device: {head}", f"Command: `python benchmarks/gpu_check.py --output {args.output}`", "",
             "| check | result | detail |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in ROWS]
    Path(args.output).write_text("\n".join(lines) + "\n")
    failed = [r for r in ROWS if r[1] == "FAIL"]
    print(f"{len(failed)} failed" if failed else "all checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
