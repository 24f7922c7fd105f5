"""Frontend: 80-dim log-mel filterbanks, global mean/variance normalisation, SpecAugment.

Frames are 25 ms windows every 10 ms without centre padding, so an utterance's features do not
depend on what it is batched with: T = 1 + (S - WIN_LENGTH) // HOP_LENGTH.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio

from .audio import SAMPLE_RATE

N_MELS = 80
N_FFT = 400                      # 25 ms at 16 kHz
WIN_LENGTH = N_FFT
HOP_LENGTH = 160                 # 10 ms
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH
LOG_FLOOR = 1e-6


def num_frames(num_samples: int) -> int:
    return 1 + max(num_samples - WIN_LENGTH, 0) // HOP_LENGTH


class LogMel(torch.nn.Module):
    """(S,) or (B, S) waveform -> (T, N_MELS) or (B, T, N_MELS) log-mel features."""

    def __init__(self, n_mels: int = N_MELS):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH,
            n_mels=n_mels, center=False, power=2.0)

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.shape[-1] < WIN_LENGTH:
            wav = torch.nn.functional.pad(wav, (0, WIN_LENGTH - wav.shape[-1]))
        return (self.mel(wav) + LOG_FLOOR).log().transpose(-1, -2)


def make_logmel(frontend: str = "fbank") -> torch.nn.Module:
    """The waveform -> features module a model's ``config.frontend`` names."""
    if frontend == "whisper":
        from .whisper import WhisperLogMel
        return WhisperLogMel()
    return LogMel()


class GlobalCMVN(torch.nn.Module):
    """Normalise each feature dimension by the mean and standard deviation of the training data.

    The statistics are buffers, so they travel inside the model's checkpoint.
    """

    def __init__(self, dim: int = N_MELS):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, feats: list[torch.Tensor]) -> None:
        """Compute the statistics from (T, D) feature tensors (e.g. a sample of the training set)."""
        x = torch.cat([f.double() for f in feats])
        self.mean.copy_(x.mean(0).float())
        self.std.copy_(x.std(0).clamp_min(1e-3).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 4
    time_width_ratio: float = 0.05   # each time mask covers at most this share of the utterance


class SpecAugment(torch.nn.Module):
    """SpecAugment (Park et al. 2019) on normalised (B, T, D) features, in training mode only.

    Masks are drawn from torch's global RNG (saved in checkpoints) and stay inside each
    utterance's length; masked values become 0, the normalised mean.
    """

    def __init__(self, cfg: SpecAugmentConfig | None = None):
        super().__init__()
        self.cfg = cfg or SpecAugmentConfig()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        c = self.cfg
        b, t, d = x.shape
        keep = torch.ones(b, t, d, dtype=torch.bool, device=x.device)
        for i in range(b):
            n = int(lengths[i])
            for _ in range(c.freq_masks):
                w = int(torch.randint(0, c.freq_width + 1, ()))
                f0 = int(torch.randint(0, max(d - w, 0) + 1, ()))
                keep[i, :, f0:f0 + w] = False
            max_w = max(1, int(n * c.time_width_ratio))
            for _ in range(c.time_masks):
                w = int(torch.randint(0, max_w + 1, ()))
                t0 = int(torch.randint(0, max(n - w, 0) + 1, ()))
                keep[i, t0:t0 + w, :] = False
        return x * keep
