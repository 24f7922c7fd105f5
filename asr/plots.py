"""Figures (matplotlib, an optional extra: pip install "asr[plot]")."""

from __future__ import annotations

import csv
from pathlib import Path


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ValueError('plotting needs matplotlib: pip install "asr[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_alignment(audio, transcript, out: str | Path) -> None:
    """Waveform with word spans (shaded by confidence, labelled) and token boundaries (ticks)."""
    from .audio import SAMPLE_RATE, load_audio

    plt = _plt()
    wav = load_audio(audio).numpy()
    fig, ax = plt.subplots(figsize=(max(6, len(wav) / SAMPLE_RATE * 1.5), 3))
    t = [i / SAMPLE_RATE for i in range(len(wav))]
    ax.plot(t, wav, linewidth=0.4, color="0.4")
    for w in transcript.words:
        ax.axvspan(w.start, w.end, alpha=0.15 + 0.25 * w.confidence, color="tab:blue")
        ax.text((w.start + w.end) / 2, 0.9 * max(abs(wav).max(), 1e-3), w.word, ha="center", fontsize=8)
    top = max(abs(wav).max(), 1e-3)
    for piece, start, _ in transcript.tokens:
        ax.axvline(start, color="tab:red", linewidth=0.5, alpha=0.6)
        ax.text(start, -0.95 * top, piece.replace("\u2581", "_"), fontsize=6, rotation=90, va="bottom")
    ax.set_xlabel("seconds")
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_training(exp_dir: str | Path, out: str | Path | None = None) -> Path:
    """Training loss and validation WER against minutes, from train.csv / valid.csv."""
    plt = _plt()
    exp_dir = Path(exp_dir)
    out = Path(out) if out else exp_dir / "curves.png"

    def rows(name):
        p = exp_dir / f"{name}.csv"
        return list(csv.DictReader(p.open())) if p.exists() else []

    train, valid = rows("train"), rows("valid")
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot([float(r["minutes"]) for r in train], [float(r["loss"]) for r in train], linewidth=0.8)
    ax[0].set_xlabel("training minutes")
    ax[0].set_ylabel("CTC loss per utterance")
    ax[0].set_yscale("log")
    if valid:
        ax[1].plot([float(r["minutes"]) for r in valid], [100 * float(r["valid_wer"]) for r in valid], "o-")
    ax[1].set_xlabel("training minutes")
    ax[1].set_ylabel("validation WER % (greedy)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
