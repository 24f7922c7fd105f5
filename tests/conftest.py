"""Shared fixtures: a synthetic 'tone speech' corpus and a tiny model trained on it once per session.

Each letter of a small alphabet is a 100 ms tone at its own pitch, and so is the space between
words (with short silences around it), so a tiny CTC model learns the mapping in seconds on a CPU.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.manifest import Utterance, write_manifest

SR = 16000
LETTERS = "abcdefgh"


def tone_speech(text: str, sr: int = SR, letter_s: float = 0.1, gap_s: float = 0.15, seed: int = 0) -> np.ndarray:
    """Render text over LETTERS as a sequence of tones (float32 mono)."""
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(gap_s * sr), np.float32)]
    n = int(letter_s * sr)
    t = np.arange(n) / sr
    env = np.sin(np.pi * np.arange(n) / n).astype(np.float32)
    gap = np.zeros(int(gap_s * sr / 3), np.float32)
    for ch in " ".join(text.split()):
        f = 300.0 + 200.0 * (LETTERS + " ").index(ch)
        tone = (0.3 * env * np.sin(2 * math.pi * f * t)).astype(np.float32)
        pieces += [gap, tone, gap] if ch == " " else [tone]
    pieces.append(np.zeros(int(gap_s * sr), np.float32))
    x = np.concatenate(pieces)
    return x + rng.normal(0, 0.003, x.shape).astype(np.float32)


def make_tone_corpus(folder: Path, n: int, seed: int = 0, name: str = "train") -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        # Random letter strings, so the model must learn letters rather than memorise words.
        text = " ".join("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 4)))
                        for _ in range(rng.randint(1, 3)))
        wav = tone_speech(text, seed=seed * 1000 + i)
        path = folder / f"{name}-{i:03d}.wav"
        sf.write(path, wav, SR)
        utts.append(Utterance(str(path), text, len(wav) / SR))
    manifest = folder / f"{name}.jsonl"
    write_manifest(manifest, utts)
    return manifest


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tones")
    make_tone_corpus(folder, 40, seed=1, name="train")
    make_tone_corpus(folder, 4, seed=2, name="valid")
    return folder


def tiny_train_config(corpus: Path, exp_dir: Path, **kw):
    from asr.trainer import TrainConfig

    base = dict(train_manifest=str(corpus / "train.jsonl"), valid_manifest=str(corpus / "valid.jsonl"),
                exp_dir=str(exp_dir), preset="tiny", tokenizer="char", epochs=200, max_steps=200,
                batch_seconds=8.0, lr=5e-3, warmup_steps=20, augment=False, specaugment=False,
                sortagrad_epochs=0, checkpoint_every=100, valid_every_epochs=1000, threads=1,
                cmvn_utterances=40, model_overrides={"dropout": 0.0})
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_model(tone_corpus, tmp_path_factory) -> Path:
    """A tiny char model overfit on the tone corpus (trained once per test session)."""
    from asr.trainer import train

    torch.manual_seed(0)
    return train(tiny_train_config(tone_corpus, tmp_path_factory.mktemp("exp")))
