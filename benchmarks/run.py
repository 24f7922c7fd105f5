"""Speed, memory and scale of `asr`, beside the peers a user would pick instead.

    python benchmarks/run.py                      # full run -> BENCHMARKS.md (several minutes)
    python benchmarks/run.py --quick              # seconds; what CI runs so the script cannot rot
    python benchmarks/run.py --manifest M.jsonl   # audio (with references) for the speed/WER table

Every figure is measured in this run, next to its comparison; timings are the minimum and median
of --repeats runs. Sections: 1 transcription speed + WER (asr greedy at 1 and all threads, asr beam,
Whisper tiny.en via faster-whisper int8, pocketsphinx), 2 frontend and decoder throughput,
3 training throughput (1 process vs 2 DDP processes, 1 thread each), 4 long files (wall time and
peak RSS for 1/10/60 minutes), 5 cold start.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from asr.audio import SAMPLE_RATE, load_audio  # noqa: E402
from asr.decode import BeamSearchDecoder, DecodingOptions, greedy_decode  # noqa: E402
from asr.inference import default_lm_path, default_model_path, load_model  # noqa: E402

from asr.decode import LM_DEFAULTS  # noqa: E402
from asr.ngram import is_ngram_path  # noqa: E402

LSTM_LM = default_model_path().with_name("default-lm.pt")     # the token-level LSTM LM shipped beside it
_KIND = "ngram" if is_ngram_path(default_lm_path()) else "lstm"
_TUNED = LM_DEFAULTS[_KIND]
_TOKENS = f" x {_TUNED['beam_size_token']} tokens" if "beam_size_token" in _TUNED else ""
DEFAULT_LM = f"beam {_TUNED['beam_size']}{_TOKENS} + {'n-gram' if _KIND == 'ngram' else 'LSTM'} LM (shipped default)"
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import score  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def speed_and_wer(manifest: Path, repeats: int, peers: list[str]) -> list[dict]:
    utts = read_manifest(manifest)
    wavs = [load_audio(u.audio_filepath) for u in utts]
    refs = [u.text for u in utts]
    audio = sum(w.numel() for w in wavs) / SAMPLE_RATE
    engines = {}
    for name, kw in [("asr greedy, 1 thread", dict(threads=1)),
                     (f"asr greedy, {os.cpu_count()} threads", dict(threads=os.cpu_count())),
                     ("asr greedy, 1 thread, --runtime onnx", dict(threads=1, runtime="onnx")),
                     ("asr greedy, 1 thread, --runtime onnx-int8", dict(threads=1, runtime="onnx-int8")),
                     (f"asr {DEFAULT_LM}, 1 thread", dict(threads=1, lm="default")),
                     (f"asr {DEFAULT_LM}, 1 thread, --runtime onnx", dict(threads=1, lm="default", runtime="onnx")),
                     ("asr beam 8 + LSTM LM, 1 thread", dict(threads=1, lm=LSTM_LM))]:
        rec = load_model(device="cpu", **kw)
        engines[name] = (rec.recognize, kw["threads"])
    torch.set_num_threads(1)
    import peers as peer_lib
    for name in peers:
        try:
            run = peer_lib.ENGINES[name]()
        except Exception as e:  # not installed here: say so in the table
            engines[name] = (None, f"unavailable: {type(e).__name__}: {str(e)[:80]}")
            continue
        engines[{"whisper": "Whisper tiny.en (faster-whisper int8, 1 thread)",
                 "pocketsphinx": "pocketsphinx en-us"}[name]] = (run, 1)
    rows = []
    for name, (fn, threads) in engines.items():
        if fn is None:
            rows.append({"engine": name.split(" ")[0], "note": threads})
            continue
        if isinstance(threads, int):
            torch.set_num_threads(threads)
        hyps = []

        def once():
            hyps.clear()
            for w in wavs:
                out = fn(w)
                hyps.append(out if isinstance(out, str) else out.text)
        fn(wavs[0])  # warm-up
        best, med = timed(once, repeats)
        rows.append({"engine": name, "rtf_min": best / audio, "rtf_median": med / audio,
                     "wer": 100 * score(refs, hyps).wer})
    whisper = [r for r in rows if r["engine"].startswith("Whisper") and "rtf_median" in r]
    for r in rows:      # speed relative to Whisper tiny.en in this same run (median over median)
        if whisper and "rtf_median" in r:
            r["x_faster_than_whisper"] = whisper[0]["rtf_median"] / r["rtf_median"]
    torch.set_num_threads(1)
    return rows, audio


def frontend_decoder(repeats: int, seconds: float) -> list[dict]:
    torch.set_num_threads(1)
    wav = torch.randn(int(seconds * SAMPLE_RATE)) * 0.1
    rec = load_model(device="cpu", threads=1)
    logmel = rec.logmel          # the default model's frontend
    lp = rec.log_probs(wav)[None]
    lengths = torch.tensor([lp.shape[1]])
    beam = BeamSearchDecoder(rec.tokenizer, DecodingOptions(beam_size=8))
    rows = []
    for name, fn in [("log-mel features", lambda: logmel(wav)),
                     (f"encoder forward ({rec.model.config.encoder})", lambda: rec.log_probs(wav)),
                     ("greedy CTC decoding", lambda: greedy_decode(lp, lengths, rec.tokenizer)),
                     ("beam search, beam 8, no LM", lambda: beam(lp, lengths))]:
        fn()
        best, med = timed(fn, repeats)
        rows.append({"stage": name, "x_realtime_best": seconds / best, "x_realtime_median": seconds / med})
    return rows


def training_throughput(manifest: Path, steps: int, preset: str, extra: list[str] = []) -> list[dict]:
    """Audio seconds per second over `steps` steps of 30 s batches per process."""
    from asr.manifest import write_manifest

    utts = read_manifest(manifest)
    total = sum(u.duration for u in utts)
    repeat = int(steps * 30 * 2 / total) + 2       # enough batches for both ranks
    rows = []
    for nproc in (1, 2):
        with tempfile.TemporaryDirectory() as exp:
            data = Path(exp) / "train.jsonl"
            write_manifest(data, utts * repeat)
            args = ["-m", "asr.cli", "train", str(data), "--exp-dir", exp, "--preset", preset,
                    "--max-steps", str(steps), "--batch-seconds", "30", "--threads", "1", "--device", "cpu",
                    "--checkpoint-every", "100000", "--no-augment", "--set", "cmvn_utterances=20",
                    "--set", f"log_every={steps}", "--set", "sortagrad_epochs=0", *extra]
            cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                                      if nproc == 2 else []) + args
            subprocess.run(cmd, check=True, capture_output=True)
            log = list(Path(exp, "train.csv").read_text().splitlines())
            last = dict(zip(log[0].split(","), log[-1].split(",")))
            rows.append({"processes": nproc, "audio_s_per_s": float(last["audio_per_second"]),
                         "data_share": float(last["data_share"])})
    base = rows[0]["audio_s_per_s"]
    for r in rows:
        r["speedup"] = r["audio_s_per_s"] / base
        r["per_thread"] = r["audio_s_per_s"] / r["processes"]
    return rows


def make_long_file(wavs: list[np.ndarray], minutes: float, path: Path) -> None:
    """Concatenate speech (with 0.3 s gaps) until `minutes` long, written block by block."""
    target = int(minutes * 60 * SAMPLE_RATE)
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
        n, i = 0, 0
        while n < target:
            piece = np.concatenate([wavs[i % len(wavs)], gap])[: target - n]
            f.write(piece)
            n += len(piece)
            i += 1


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "0":
        raise RuntimeError(f"{cmd} failed")
    return float(out[0]), float(out[1]) / 1024


def long_files(wavs: list[np.ndarray], minutes_list: list[float]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for minutes in minutes_list:
            path = Path(d) / f"long_{minutes}.wav"
            make_long_file(wavs, minutes, path)
            wall, rss = run_measured([sys.executable, "-m", "asr.cli", "transcribe", str(path), "--threads", "1"])
            rows.append({"minutes": minutes, "wall_s": wall, "rtf_incl_startup": wall / (60 * minutes),
                         "peak_rss_mb": rss})
            path.unlink()
    base = rows[0]
    for r in rows:
        r["time_ratio"] = r["wall_s"] / base["wall_s"]
    return rows


def cold_start(wav: np.ndarray, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "three_seconds.wav"
        sf.write(p, wav[: 3 * SAMPLE_RATE], SAMPLE_RATE)
        rows = []
        for name, cmd in [("python -c 'import torch, torchaudio'", [sys.executable, "-c", "import torch, torchaudio"]),
                          ("asr transcribe (3 s file)", [sys.executable, "-m", "asr.cli", "transcribe", str(p)])]:
            times = [run_measured(cmd)[0] for _ in range(repeats)]
            rows.append({"command": name, "wall_min_s": min(times), "wall_median_s": statistics.median(times)})
    return rows


def exported(manifest: Path, repeats: int) -> list[dict]:
    """The default model through ONNX Runtime, fp32 and int8 (dynamic quantisation), vs PyTorch."""
    import onnxruntime as ort

    from asr.export import export_model
    from asr.inference import default_model_path

    utts = read_manifest(manifest)
    rec = load_model(device="cpu", threads=1)
    feats = [rec.logmel(load_audio(u.audio_filepath)) for u in utts]
    audio = sum(f.shape[0] for f in feats) / 100
    refs = [u.text for u in utts]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        runners = {"PyTorch fp32": lambda f: rec.model(f[None], torch.tensor([f.shape[0]]))}
        for name, quant in (("ONNX Runtime fp32", False), ("ONNX Runtime int8", True)):
            path = export_model(default_model_path(), Path(d) / f"{quant}.onnx", "onnx", quantize=quant)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts)
            runners[name] = lambda f, s=sess: [torch.from_numpy(x) for x in s.run(
                None, {"feats": f[None].numpy(), "lengths": np.array([f.shape[0]], dtype=np.int64)})]
        for name, run in runners.items():
            hyps = []

            def once():
                hyps.clear()
                with torch.inference_mode():
                    for f in feats:
                        lp, n = run(f)
                        hyps.append(greedy_decode(lp.float().log_softmax(-1), n, rec.tokenizer)[0].text)
            once()
            best, med = timed(once, repeats)
            rows.append({"runtime": name, "encoder_rtf_min": best / audio, "encoder_rtf_median": med / audio,
                         "wer": 100 * score(refs, hyps).wer})
    return rows


def lm_fusion_steps(manifest: Path, repeats: int) -> list[dict]:
    """Beam 8 + LSTM LM decoding time (log-probs precomputed): the LM stepped by torch.lstm (the first
    implementation) vs the numpy `LSTMStepper` that replaced it after profiling, and the latter with
    runs of near-certain blank frames cut before the search (--blank-skip 0.99); then the shipped
    default, lexicon search with the word n-gram."""
    import asr.lm as lm_lib

    class TorchStepper:
        def __init__(self, lm):
            self.lm = lm

        @torch.no_grad()
        def step(self, token, state):
            h, state = self.lm.hidden_states(torch.tensor([[token]]), state)
            return state, self.lm.logits_from_states(h[0, -1]).log_softmax(-1).numpy()

    torch.set_num_threads(1)
    rec = load_model(device="cpu", threads=1, lm=LSTM_LM)
    lps = [rec.log_probs(load_audio(u.audio_filepath)) for u in read_manifest(manifest)]
    audio = sum(lp.shape[0] for lp in lps) * rec.frame_seconds
    original = lm_lib.LSTMStepper
    lm_lib.LSTMStepper = TorchStepper       # FusionLM builds its stepper from this name
    try:
        first = load_model(device="cpu", threads=1, lm=LSTM_LM, blank_skip_threshold=1.0).decoder
    finally:
        lm_lib.LSTMStepper = original
    skip = load_model(device="cpu", threads=1, lm=LSTM_LM, blank_skip_threshold=0.99).decoder
    ngram = load_model(device="cpu", threads=1, lm="default").decoder
    share = sum(float((lp[:, rec.tokenizer.blank_id] > math.log(0.99)).float().sum()) for lp in lps) / sum(lp.shape[0] for lp in lps)
    rows = []
    for name, dec in (("torch.lstm per token, every frame (first version)", first),
                      ("numpy LSTMStepper, every frame", rec.decoder),
                      (f"numpy LSTMStepper, --blank-skip 0.99 ({100 * share:.0f}% of frames have blank p > 0.99)", skip),
                      (f"{DEFAULT_LM} (words, KenLM; transcripts differ by design)", ngram)):
        texts = []

        def once():
            texts.clear()
            texts.extend(dec(lp[None], torch.tensor([lp.shape[0]]))[0].text for lp in lps)
        best, med = timed(once, repeats)
        rows.append({"LM step": name, "decode_rtf_min": best / audio, "decode_rtf_median": med / audio,
                     "texts": list(texts)})
    reference = rows[0]["texts"]
    for r in rows:
        texts = r.pop("texts")
        r["transcripts_as_first"] = f"{sum(a == b for a, b in zip(texts, reference))}/{len(reference)}"
    return rows


def targets(speed: list[dict], training: list[dict], long: list[dict]) -> list[dict]:
    """The project's goals, checked against this run's figures (medians for speed)."""
    by = {r["engine"]: r for r in speed if "rtf_median" in r}
    out = []

    def check(goal, value, ok, fmt="{:.4f}"):
        out.append({"target": goal, "measured": "n/a" if value is None else fmt.format(value),
                    "met": "n/a" if value is None else ("yes" if ok(value) else "no")})
    for runtime in ("", ", --runtime onnx", ", --runtime onnx-int8"):
        greedy = by.get(f"asr greedy, 1 thread{runtime}")
        check(f"greedy, 1 thread{runtime}: RTF <= 0.005", greedy and greedy["rtf_median"], lambda v: v <= 0.005)
        check(f"greedy, 1 thread{runtime}: >= 20x faster than Whisper tiny.en",
              greedy and greedy.get("x_faster_than_whisper"), lambda v: v >= 20, "{:.1f}x")
        beam = by.get(f"asr {DEFAULT_LM}, 1 thread{runtime}")
        if beam:
            check(f"beam + LM, 1 thread{runtime}: RTF <= 0.03", beam["rtf_median"], lambda v: v <= 0.03)
    last = long[-1]
    check(f"{last['minutes']:g}-minute file: peak RSS <= 1 GB", last["peak_rss_mb"], lambda v: v <= 1024, "{:.0f} MB")
    check(f"{last['minutes']:g}-minute file: time <= 65x the {long[0]['minutes']:g}-minute time",
          last["time_ratio"], lambda v: v <= 65 * last["minutes"] / 60 / long[0]["minutes"], "{:.1f}x")
    check("training: >= 30 s of audio per second per thread (1 process)", training[0]["per_thread"],
          lambda v: v >= 30, "{:.1f}")
    check("training: 2 DDP processes >= 1.7x one", training[-1]["speedup"], lambda v: v >= 1.7, "{:.2f}x")
    return out


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run for CI")
    p.add_argument("--manifest", type=Path, default=ROOT / "data" / "samples" / "samples.jsonl")
    p.add_argument("--train-manifest", type=Path, default=None, help="for training throughput (default: --manifest)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peers", default="whisper,pocketsphinx")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args()
    repeats = 1 if args.quick else args.repeats
    started = time.time()
    sections = []

    rows, audio = speed_and_wer(args.manifest, repeats, [x for x in args.peers.split(",") if x])
    sections.append((f"1. Transcription speed and WER ({audio:.0f} s of audio from `{args.manifest.name}`, "
                     "RTF = processing time / audio time, model loading excluded)", rows))
    sections.append(("2. Frontend and decoder throughput (x real time, 1 thread)",
                     frontend_decoder(repeats, 10.0 if args.quick else 60.0)))
    train_manifest = args.train_manifest or args.manifest
    speed = rows
    training = training_throughput(train_manifest, 3 if args.quick else 40, "tiny" if args.quick else "small")
    sections.append((f"3. Training throughput, `{'tiny' if args.quick else 'small'}` preset, 1 thread per process, "
                     f"no waveform augmentation (`{train_manifest.name}`)", training))
    if not args.quick:
        sections.append((f"3b. Training throughput, `whisper_tiny_adapter` with the encoder frozen (the default "
                         f"model's recipe), 1 thread per process, no waveform augmentation (`{train_manifest.name}`)",
                         training_throughput(train_manifest, 40, "whisper_tiny_adapter",
                                             ["--pretrained-encoder", "bundled", "--set", "freeze_encoder=true"])))
    wavs = [load_audio(u.audio_filepath).numpy() for u in read_manifest(args.manifest)]
    long = long_files(wavs, [0.25, 0.5] if args.quick else [1, 10, 60])
    sections.append((f"4. Long files: `asr transcribe --threads 1` (its default decoding: {DEFAULT_LM}), "
                     "wall time of the whole command (start-up included, see 5) and peak RSS", long))
    sections.append(("5. Cold start", cold_start(np.concatenate(wavs * 3), 1 if args.quick else 3)))
    sections.append(("6. Exported model (greedy, 1 thread; RTF of the model and decoding, features excluded)",
                     exported(args.manifest, repeats)))
    sections.append(("7. LM decoding only (acoustic log-probs precomputed), 1 thread",
                     lm_fusion_steps(args.manifest, repeats)))

    versions = {m: __import__(m).__version__ for m in ("torch", "torchaudio")}
    header = (f"# Benchmarks\n\nCommand: `python benchmarks/run.py {' '.join(sys.argv[1:])}`  \n"
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python "
              f"{platform.python_version()}, torch {versions['torch']}, torchaudio {versions['torchaudio']}  \n"
              f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; run took {time.time() - started:.0f} s\n")
    sections.insert(0, ("Targets (checked against the figures below)",
                        targets(speed, training, long)))
    text = header + "".join(f"\n## {title}\n\n{table(rows)}\n" for title, rows in sections)
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
