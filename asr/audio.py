"""Audio input: any file libsndfile reads -> mono float32 at the model's sample rate.

Long files are read block by block (`stream_audio`) and cut at quiet points, so memory stays
bounded whatever the file's length.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16000
CHUNK_SECONDS = 30.0       # longest piece the model sees at once when streaming
CUT_SEARCH_SECONDS = 3.0   # a chunk ends at the quietest 10 ms within its last 3 s
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


class AudioError(Exception):
    """A file that cannot be turned into audio; str() is a one-line reason naming the file."""


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")


def _open(path: Path) -> sf.SoundFile:
    _check_path(path)
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    msg = str(e).split("\n")[0]
    if "Error opening" in msg and ":" in msg:
        msg = msg.rsplit(":", 1)[-1].strip()
    return msg or type(e).__name__


def to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) by averaging channels."""
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, orig_sr, new_sr)


def _validate(path: Path, samples: np.ndarray) -> None:
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: samples contain NaN or infinity")


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, offset: float = 0.0,
               duration: float | None = None) -> torch.Tensor:
    """Read a file (or `duration` seconds from `offset`) as a 1-D float32 tensor at `sample_rate`
    (mono, channels averaged).

    Raises `AudioError` for a missing path, a directory, an empty or non-audio file, a file with
    no samples, or samples that are NaN/infinite.
    """
    path = Path(path)
    with _open(path) as f:
        sr = f.samplerate
        try:
            if offset:
                f.seek(min(int(offset * sr), f.frames))
            data = f.read(-1 if duration is None else int(round(duration * sr)), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{path}: cannot decode audio ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples")
    mono = to_mono(data)
    _validate(path, mono)
    return resample(torch.from_numpy(mono), sr, sample_rate)


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files under `folder` (by extension, recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the header (raises `AudioError` like `load_audio`)."""
    with _open(Path(path)) as f:
        return f.frames / f.samplerate


def _quietest_cut(wav: torch.Tensor, start: int, sample_rate: int) -> int:
    """Index of the quietest 10 ms frame boundary in wav[start:]."""
    hop = sample_rate // 100
    tail = wav[start:]
    n = tail.numel() // hop
    if n < 2:
        return wav.numel()
    energy = tail[: n * hop].reshape(n, hop).pow(2).mean(dim=1)
    return start + int(energy.argmin()) * hop + hop // 2


class _StreamResampler:
    """Resample a signal that arrives in blocks, giving the same samples as resampling it whole.

    Each block is resampled with CONTEXT raw samples of the previous and the next block around
    it (a whole number of resampling periods), and the output of the context is dropped.
    """

    CONTEXT = 512

    def __init__(self, orig_sr: int, new_sr: int):
        g = math.gcd(orig_sr, new_sr)
        self.orig_sr, self.new_sr = orig_sr, new_sr
        self.period_in, self.period_out = orig_sr // g, new_sr // g
        self.ctx = self.period_in * -(-self.CONTEXT // self.period_in)
        self.left = torch.zeros(0)
        self.pending = torch.zeros(0)

    def _out(self, n_in: int) -> int:
        return n_in // self.period_in * self.period_out

    def push(self, block: torch.Tensor, last: bool) -> torch.Tensor:
        if self.orig_sr == self.new_sr:
            return block
        self.pending = torch.cat([self.pending, block])
        if last:
            seg = torch.cat([self.left, self.pending])
            self.pending = torch.zeros(0)
            return resample(seg, self.orig_sr, self.new_sr)[self._out(self.left.numel()):]
        n = (self.pending.numel() - self.ctx) // self.period_in * self.period_in
        if n <= 0:
            return torch.zeros(0)
        seg = torch.cat([self.left, self.pending[: n + self.ctx]])
        out = resample(seg, self.orig_sr, self.new_sr)
        out = out[self._out(self.left.numel()): self._out(self.left.numel()) + self._out(n)]
        done = torch.cat([self.left, self.pending[:n]])
        self.left = done[-self.ctx:] if done.numel() >= self.ctx else done[done.numel() % self.period_in:]
        self.pending = self.pending[n:]
        return out


def stream_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
                 chunk_seconds: float = CHUNK_SECONDS) -> Iterator[tuple[float, torch.Tensor]]:
    """Yield ``(offset_seconds, chunk)`` pieces of at most `chunk_seconds`, cut at quiet points.

    Reads the file in blocks, so a 3-hour file uses the memory of one chunk. Pieces are mono
    float32 at `sample_rate` and cover the whole file without gaps.
    """
    path = Path(path)
    chunk = int(chunk_seconds * sample_rate)
    search = int(min(CUT_SEARCH_SECONDS, chunk_seconds / 2) * sample_rate)
    with _open(path) as f:
        if f.frames == 0:
            raise AudioError(f"{path}: no audio samples")
        sr = f.samplerate
        block = int(chunk_seconds * sr)
        resampler = _StreamResampler(sr, sample_rate)
        pending = torch.zeros(0)
        offset = 0
        any_samples = False
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{path}: cannot decode audio ({_reason(e)})") from None
            eof = data.shape[0] < block
            if data.shape[0]:
                any_samples = True
                mono = to_mono(data)
                _validate(path, mono)
            else:
                mono = np.zeros(0, np.float32)
            pending = torch.cat([pending, resampler.push(torch.from_numpy(mono), last=eof)])
            while pending.numel() > chunk or (eof and pending.numel()):
                cut = pending.numel() if pending.numel() <= chunk else _quietest_cut(pending[:chunk], chunk - search, sample_rate)
                yield offset / sample_rate, pending[:cut]
                offset += cut
                pending = pending[cut:]
            if eof:
                break
        if not any_samples:
            raise AudioError(f"{path}: no audio samples")
