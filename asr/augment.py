"""Waveform augmentation for training: voice (pitch and formants), speed, noise (drawn, or recorded:
music and background talkers from folders of audio files), reverberation, telephone band (mu-law,
or a real GSM / AMR-NB codec through sox), gain.

`AugmentConfig` holds the probabilities; `augment(wav, cfg, rng)` draws one chain per utterance.
The aim is robustness to real, unseen voices and channels (including 8 kHz telephone speech).
"""

from __future__ import annotations

import math
import random
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchaudio

from .audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, audio_files, load_audio, resample


@dataclass
class AugmentConfig:
    p_pitch: float = 0.0             # shift pitch and formants together, keeping the duration:
    pitch_semitones: tuple[float, float] = (-4.0, 4.0)  # a new voice from a synthetic one
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_recorded: float = 0.0          # of the noise draws, the share taken from `noise_dirs` instead of Gaussian
    noise_dirs: tuple[str, ...] = ()  # folders of recorded noise; one is drawn per utterance (see `recorded_noise`)
    recorded_snr_db: tuple[float, float] | None = None  # SNR range for recorded noise; None: `snr_db`
    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.6)
    p_telephone: float = 0.25
    p_codec: float = 0.0             # of the telephone chains, the share coded by GSM or AMR-NB (sox) instead of mu-law
    gain_db: tuple[float, float] = (-12.0, 6.0)


def augment(wav: torch.Tensor, cfg: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """One random augmentation chain: pitch -> speed -> reverb -> telephone -> noise -> gain."""
    if cfg.p_pitch > 0 and rng.random() < cfg.p_pitch:   # no draw when off: older chains stay as they were
        wav = pitch_shift(wav, rng.uniform(*cfg.pitch_semitones))
    wav = speed_perturb(wav, rng.choice(cfg.speed_factors))
    if rng.random() < cfg.p_reverb:
        wav = reverberate(wav, rng.uniform(*cfg.rt60), rng)
    if rng.random() < cfg.p_telephone:
        wav = telephone(wav, rng, cfg.p_codec)
    if rng.random() < cfg.p_noise:
        if cfg.p_recorded > 0 and rng.random() < cfg.p_recorded:   # no draw when off, as p_pitch
            noise = recorded_noise(wav.numel(), cfg.noise_dirs, rng)
            wav = mix_at_snr(wav, noise, rng.uniform(*(cfg.recorded_snr_db or cfg.snr_db)))
        else:
            wav = add_noise(wav, rng.uniform(*cfg.snr_db), rng, colour=rng.choice([0.0, 0.0, 0.7, 0.95]))
    wav = gain(wav, rng.uniform(*cfg.gain_db))
    return wav.clamp(-1.0, 1.0)


def speed_perturb(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """Play `wav` `factor` times faster (pitch moves with it), as Kaldi's speed perturbation."""
    if factor == 1.0:
        return wav
    # Resampling from sr*factor to sr shortens the signal by `factor`.
    num = int(round(SAMPLE_RATE * factor / 100))
    return resample(wav, num, SAMPLE_RATE // 100)


def pitch_shift(wav: torch.Tensor, semitones: float, n_fft: int = 512, hop: int = 128) -> torch.Tensor:
    """Move pitch and formants by `semitones` at the same duration: speed perturbation, then a
    phase-vocoder stretch back to the input length (a vocal-tract-length and pitch change)."""
    factor = 2.0 ** (semitones / 12.0)
    y = speed_perturb(wav, round(factor, 2))
    if y.numel() < n_fft:
        return wav
    window = torch.hann_window(n_fft)
    spec = torch.stft(y, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0])[:, None]
    spec = torchaudio.functional.phase_vocoder(spec, y.numel() / wav.numel(), advance)
    return torch.istft(spec, n_fft, hop, window=window, length=wav.numel())


def add_noise(wav: torch.Tensor, snr_db: float, rng: random.Random | None = None, colour: float = 0.0) -> torch.Tensor:
    """Add Gaussian noise at `snr_db`; `colour` in [0, 1) low-passes it (0 = white, 0.9 = rumble)."""
    rng = rng or random
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    noise = torch.randn(wav.shape, generator=g)
    if colour > 0:
        noise = torchaudio.functional.lfilter(noise, torch.tensor([1.0, -colour]), torch.tensor([1.0 - colour, 0.0]), clamp=False)
    return mix_at_snr(wav, noise, snr_db)


def mix_at_snr(wav: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """`wav` plus `noise` (the same length) scaled to `snr_db` below it."""
    p_sig = wav.pow(2).mean().clamp_min(1e-10)
    p_noise = noise.pow(2).mean().clamp_min(1e-10)
    return wav + noise * torch.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))


LONG_NOISE_S = 30.0   # a folder whose median file is at least this long is one layer (music); else talkers


@lru_cache(maxsize=8)
def noise_bank(folder: str) -> tuple[torch.Tensor, ...]:
    """Every audio file under `folder` (recursive, sorted), loaded once per process at 16 kHz."""
    clips = []
    for p in audio_files(folder):
        try:
            clip = load_audio(p)
        except AudioError:   # a broken file among hundreds is skipped, not fatal to training
            continue
        if clip.abs().max() > 0:
            clips.append(clip)
    if not clips:
        raise ValueError(f"noise folder {folder} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return tuple(clips)


@lru_cache(maxsize=8)
def _is_music(folder: str) -> bool:
    """Whether a noise folder's median file is long (one layer of music), not short prompts (talkers)."""
    lengths = sorted(c.numel() for c in noise_bank(folder))
    return lengths[len(lengths) // 2] >= LONG_NOISE_S * SAMPLE_RATE


def recorded_noise(n: int, dirs: tuple[str, ...] | list[str], rng: random.Random) -> torch.Tensor:
    """`n` samples of recorded noise from one folder of `dirs`, drawn at random. A folder of long files
    (music) gives one random stretch of one of them; a folder of short ones (speech prompts) gives 1-4
    background talkers, each a run of its clips from a random point, at equal level."""
    if not dirs:
        raise ValueError("p_recorded > 0 needs noise_dirs (folders of recorded noise)")
    folder = str(rng.choice(list(dirs)))
    bank = noise_bank(folder)
    talkers = 1 if _is_music(folder) else rng.randint(1, 4)
    out = torch.zeros(n)
    for _ in range(talkers):
        parts, have = [], 0
        clip = rng.choice(bank)
        start = rng.randrange(clip.numel())
        while have < n:
            piece = clip[start:start + n - have]
            parts.append(piece)
            have += piece.numel()
            clip, start = rng.choice(bank), 0
        layer = torch.cat(parts)
        out += layer / layer.pow(2).mean().sqrt().clamp_min(1e-8)
    return out


def reverberate(wav: torch.Tensor, rt60: float, rng: random.Random | None = None) -> torch.Tensor:
    """Convolve with a synthetic room impulse response (exponentially decaying noise, `rt60` s)."""
    rng = rng or random
    n = max(int(rt60 * SAMPLE_RATE), 1)
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    t = torch.arange(n) / SAMPLE_RATE
    rir = torch.randn(n, generator=g) * torch.exp(-6.9 * t / rt60)
    rir[0] = 1.0
    rir = rir / rir.norm()
    out = torchaudio.functional.fftconvolve(wav, rir)[: wav.numel()]
    return out * (wav.abs().max() / out.abs().max().clamp_min(1e-8))


def band_limit_8k(wav: torch.Tensor, cutoff: float = 3400.0) -> torch.Tensor:
    """16 kHz waveform -> the telephone band at 8 kHz: high-pass at 300 Hz, low-pass at `cutoff`."""
    x = torchaudio.functional.highpass_biquad(wav, SAMPLE_RATE, 300.0)
    return torchaudio.functional.lowpass_biquad(resample(x, SAMPLE_RATE, 8000), 8000, cutoff)


def telephone(wav: torch.Tensor, rng: random.Random | None = None, p_codec: float = 0.0) -> torch.Tensor:
    """Narrowband channel: 300-3400 Hz band, 8 kHz sampling, mu-law companding (or, at `p_codec`, a
    GSM or AMR-NB round trip), back to 16 kHz."""
    rng = rng or random
    x = band_limit_8k(wav, rng.uniform(3000.0, 3500.0))
    peak = x.abs().max().clamp_min(1e-8)
    if p_codec > 0 and rng.random() < p_codec:   # no draw when off: older chains stay as they were
        x = codec_round_trip(x / peak, rng.choice(list(CODECS))) * peak
    else:
        bits = rng.choice([256, 256, 64])  # 8-bit mu-law, sometimes coarser (codec-like)
        x = torchaudio.functional.mu_law_decoding(torchaudio.functional.mu_law_encoding(x / peak, bits), bits) * peak
    return resample(x, 8000, SAMPLE_RATE)


# sox's name and options of each codec: GSM full rate (13 kbit/s), AMR-NB at its lowest and highest rates.
CODECS = {"gsm": ("gsm", ()), "amr-nb-4.75": ("amr-nb", ("-C", "0")), "amr-nb-12.2": ("amr-nb", ("-C", "7"))}


def codec_round_trip(x: torch.Tensor, codec: str) -> torch.Tensor:
    """Encode and decode an 8 kHz waveform in [-1, 1] with a telephone codec of `CODECS`, through sox;
    the output has the input's length."""
    fmt, opts = CODECS[codec]
    mono_8k = ["-r", "8000", "-c", "1"]
    try:
        coded = subprocess.run(["sox", "-t", "f32", *mono_8k, "-", *opts, "-t", fmt, "-"],
                               input=x.float().numpy().tobytes(), capture_output=True, check=True).stdout
        out = subprocess.run(["sox", "-t", fmt, *mono_8k, "-", "-t", "f32", "-"], input=coded,
                             capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise RuntimeError("the codec augmentation (p_codec) needs sox: apt-get install sox") from None
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"sox could not code {codec}: {e.stderr.decode(errors='replace').strip()}") from None
    y = torch.frombuffer(bytearray(out), dtype=torch.float32)
    return torch.nn.functional.pad(y, (0, max(0, x.numel() - y.numel())))[: x.numel()]


def gain(wav: torch.Tensor, db: float) -> torch.Tensor:
    return wav * math.pow(10.0, db / 20.0)
