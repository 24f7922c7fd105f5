import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio, stream_audio


def sine(sr, seconds=0.5, channels=1, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000])
def test_any_rate_is_resampled(tmp_path, sr):
    p = tmp_path / "a.wav"
    sf.write(p, sine(sr), sr)
    wav = load_audio(p)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.numel() - SAMPLE_RATE * 0.5) <= 2


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_mixed_to_mono(tmp_path, channels):
    p = tmp_path / "a.wav"
    sf.write(p, sine(16000, channels=channels), 16000)
    wav = load_audio(p)
    assert wav.shape == (8000,)
    assert wav.abs().max() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_U8", "wav"), ("WAV", "PCM_16", "wav"),
                                             ("WAV", "PCM_24", "wav"), ("WAV", "PCM_32", "wav"),
                                             ("WAV", "FLOAT", "wav"), ("FLAC", "PCM_16", "flac"),
                                             ("OGG", "VORBIS", "ogg")])
def test_sample_formats(tmp_path, fmt, subtype, ext):
    p = tmp_path / f"a b \u00e9.{ext}"   # spaces and non-ASCII in the path
    sf.write(p, sine(16000), 16000, format=fmt, subtype=subtype)
    wav = load_audio(p)
    assert wav.numel() == 8000
    assert wav.abs().max() == pytest.approx(0.5, abs=0.05)


def test_bad_inputs_raise_one_error_type(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n")
    cases = {
        tmp_path / "missing.wav": "no such file",
        tmp_path: "directory",
        tmp_path / "empty.wav": "empty file",
        tmp_path / "text.wav": "not a readable audio file",
    }
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason) as e:
            load_audio(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_zero_samples_and_nan(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")
    x = sine(16000)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_stream_covers_file_in_bounded_chunks(tmp_path):
    sr = 22050
    x = np.concatenate([sine(sr, 7.0), np.zeros(sr // 2), sine(sr, 6.0)])
    p = tmp_path / "long.wav"
    sf.write(p, x, sr)
    chunks = list(stream_audio(p, chunk_seconds=4.0))
    total = sum(c.numel() for _, c in chunks)
    assert abs(total - len(x) * SAMPLE_RATE / sr) < 10 * len(chunks)
    assert all(c.numel() <= 4.0 * SAMPLE_RATE for _, c in chunks)
    offsets = [o for o, _ in chunks]
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    # The pieces put back together are the whole signal.
    assert torch.allclose(torch.cat([c for _, c in chunks]), load_audio(p)[:total], atol=1e-3)
    assert audio_duration(p) == pytest.approx(len(x) / sr)


@pytest.mark.parametrize("semitones", [-4.0, 3.0])
def test_pitch_shift_moves_the_pitch_and_keeps_the_duration(semitones):
    from asr.augment import pitch_shift

    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=1.0, freq=200.0)).float()
    out = pitch_shift(wav, semitones)
    assert out.shape == wav.shape
    spectrum = torch.fft.rfft(out[2000:-2000] * torch.hann_window(12000)).abs()
    peak_hz = spectrum.argmax().item() * SAMPLE_RATE / 12000
    assert peak_hz == pytest.approx(200.0 * 2 ** (semitones / 12), rel=0.03)


def test_voice_augmentation_is_seeded_and_changes_the_chain_only_when_on():
    import random

    from asr.augment import AugmentConfig, augment

    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=0.5)).float()
    off = augment(wav, AugmentConfig(), random.Random(7))
    on = augment(wav, AugmentConfig(p_pitch=1.0), random.Random(7))
    assert torch.equal(off, augment(wav, AugmentConfig(), random.Random(7)))
    assert not torch.equal(off, on)


@pytest.mark.parametrize("codec", ["gsm", "amr-nb-4.75", "amr-nb-12.2"])
def test_codec_round_trip_keeps_the_length_and_the_tone(codec):
    from asr.augment import codec_round_trip

    x = torch.from_numpy(sine(8000, seconds=1.0, freq=440.0)).float()
    y = codec_round_trip(x, codec)
    assert y.shape == x.shape and not torch.equal(x, y)
    spectrum = torch.fft.rfft(y[1000:-1000] * torch.hann_window(6000)).abs()
    assert spectrum.argmax().item() * 8000 / 6000 == pytest.approx(440.0, rel=0.02)
    assert 0.3 < y[1000:-1000].pow(2).mean() / x[1000:-1000].pow(2).mean() < 3.0


def test_telephone_codec_is_drawn_only_when_on(monkeypatch):
    import random

    from asr.augment import telephone

    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=0.5)).float()
    rng_a, rng_b = random.Random(3), random.Random(3)
    assert torch.equal(telephone(wav, rng_a), telephone(wav, rng_b, p_codec=0.0))
    assert rng_a.random() == rng_b.random()      # the same draws: chains without codecs stay as they were
    coded = telephone(wav, random.Random(3), p_codec=1.0)
    assert coded.shape == wav.shape and not torch.equal(coded, telephone(wav, random.Random(3)))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="needs sox"):
        telephone(wav, random.Random(3), p_codec=1.0)


def _noise_folders(tmp_path):
    """A 'music' folder (one 40 s file) and a 'talkers' folder (short clips and a broken file)."""
    music, talk = tmp_path / "music", tmp_path / "talk" / "sub"
    talk.mkdir(parents=True)
    music.mkdir()
    sf.write(music / "track.wav", sine(8000, seconds=40.0, freq=300.0), 8000)
    for i, f in enumerate([500.0, 700.0, 900.0]):
        sf.write(talk / f"p{i}.wav", sine(8000, seconds=0.3, freq=f), 8000)
    (talk / "broken.wav").write_bytes(b"not audio")
    return music, tmp_path / "talk"


def _snr_db(clean: torch.Tensor, mixed: torch.Tensor) -> float:
    return (10 * torch.log10(clean.pow(2).mean() / (mixed - clean).pow(2).mean())).item()


def test_recorded_noise_fills_the_length_from_a_folder_and_mixes_at_the_snr(tmp_path):
    import random

    from asr.augment import mix_at_snr, noise_bank, recorded_noise

    music, talk = _noise_folders(tmp_path)
    assert len(noise_bank(str(talk))) == 3                 # recursive; the broken file is skipped
    n = SAMPLE_RATE * 2
    for folder in (music, talk):
        noise = recorded_noise(n, [str(folder)], random.Random(1))
        assert noise.shape == (n,) and noise.abs().max() > 0
        assert torch.equal(noise, recorded_noise(n, [str(folder)], random.Random(1)))   # seeded
    # A 2 s stretch of the short clips (0.3 s each) runs on across several of them.
    spectrum = torch.fft.rfft(recorded_noise(n, [str(talk)], random.Random(2))).abs()
    peaks = {round(i * SAMPLE_RATE / n, -2) for i in spectrum.topk(200).indices.tolist()}
    assert len(peaks & {500.0, 700.0, 900.0}) >= 2
    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=2.0, freq=200.0)).float()
    noise = recorded_noise(n, [str(music)], random.Random(3))
    assert _snr_db(wav, mix_at_snr(wav, noise, 10.0)) == pytest.approx(10.0, abs=0.01)
    with pytest.raises(ValueError, match="holds no audio"):
        noise_bank(str(tmp_path / "music" / "none"))
    with pytest.raises(ValueError, match="needs noise_dirs"):
        recorded_noise(n, [], random.Random(0))


def test_recorded_noise_is_drawn_only_when_on(tmp_path):
    import random

    from asr.augment import AugmentConfig, augment

    music, talk = _noise_folders(tmp_path)
    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=0.5)).float()
    base = AugmentConfig(p_noise=1.0, noise_dirs=(str(music), str(talk)))
    assert torch.equal(augment(wav, AugmentConfig(p_noise=1.0), random.Random(5)), augment(wav, base, random.Random(5)))
    recorded = augment(wav, AugmentConfig(p_noise=1.0, p_recorded=1.0, noise_dirs=base.noise_dirs), random.Random(5))
    assert not torch.equal(recorded, augment(wav, base, random.Random(5)))


def test_recorded_noise_has_its_own_snr_range_when_set(tmp_path):
    import random

    from asr.augment import AugmentConfig, augment

    music, _ = _noise_folders(tmp_path)
    wav = torch.from_numpy(sine(SAMPLE_RATE, seconds=0.5)).float()
    plain = dict(p_noise=1.0, p_recorded=1.0, noise_dirs=(str(music),), snr_db=(7.0, 7.0), p_reverb=0.0,
                 p_telephone=0.0, speed_factors=(1.0,), gain_db=(0.0, 0.0))

    def snr(cfg):
        return _snr_db(wav, augment(wav, cfg, random.Random(4)))

    assert snr(AugmentConfig(**plain)) == pytest.approx(7.0, abs=0.05)      # None: the Gaussian range
    assert snr(AugmentConfig(**plain, recorded_snr_db=(20.0, 20.0))) == pytest.approx(20.0, abs=0.05)
