"""The Whisper-initialised encoder: CTranslate2 reader, frontend, masking, training and runtimes."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone_speech, tiny_train_config

from asr.checkpoint import load_checkpoint, model_from_checkpoint
from asr.model import CTCModel, whisper_tiny
from asr.whisper import WhisperLogMel, read_ct2, whisper_encoder_state

DIMS = dict(d_model=16, n_layers=1, n_heads=2, ff_mult=4)


def write_ct2(path, variables: dict[str, np.ndarray], aliases: dict[str, str] = {}) -> None:
    """A CTranslate2 model.bin (format 6) holding `variables` (float16/float32/int16)."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def string(s: str) -> bytes:
        return struct.pack("H", len(s) + 1) + s.encode() + b"\0"

    out = [struct.pack("I", 6), string("WhisperSpec"), struct.pack("I", 3), struct.pack("I", len(variables))]
    for name, a in variables.items():
        out += [string(name), struct.pack("B", a.ndim), *(struct.pack("I", d) for d in a.shape),
                struct.pack("B", ids[a.dtype]), struct.pack("I", a.nbytes), a.tobytes()]
    out.append(struct.pack("I", len(aliases)))
    out += [string(a) + string(t) for a, t in aliases.items()]
    path.write_bytes(b"".join(out))


def fake_whisper(folder, d=16, heads=2, n_mels=80, seed=0, layers=1):
    """A random Whisper-shaped CTranslate2 directory (encoder and one decoder variable)."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float16)

    v = {"encoder/conv1/weight": r(d, n_mels, 3), "encoder/conv1/bias": r(d),
         "encoder/conv2/weight": r(d, d, 3), "encoder/conv2/bias": r(d),
         "encoder/layer_norm/gamma": r(d), "encoder/layer_norm/beta": r(d),
         "encoder/num_heads": np.array(heads, np.int16), "decoder/embeddings/weight": r(10, d)}
    for name, shape in [("self_attention/layer_norm/gamma", (d,)), ("self_attention/layer_norm/beta", (d,)),
                        ("self_attention/linear_0/weight", (3 * d, d)), ("self_attention/linear_0/bias", (3 * d,)),
                        ("self_attention/linear_1/weight", (d, d)), ("self_attention/linear_1/bias", (d,)),
                        ("ffn/layer_norm/gamma", (d,)), ("ffn/layer_norm/beta", (d,)),
                        ("ffn/linear_0/weight", (4 * d, d)), ("ffn/linear_0/bias", (4 * d,)),
                        ("ffn/linear_1/weight", (d, 4 * d)), ("ffn/linear_1/bias", (d,))]:
        for i in range(layers):
            v[f"encoder/layer_{i}/{name}"] = r(*shape)
    folder.mkdir(parents=True, exist_ok=True)
    write_ct2(folder / "model.bin", v, {"decoder/projection/weight": "decoder/embeddings/weight"})
    return folder, v


def test_ct2_reader_maps_every_encoder_weight(tmp_path):
    folder, v = fake_whisper(tmp_path / "w")
    read = read_ct2(folder / "model.bin")
    assert read["decoder/projection/weight"] is read["decoder/embeddings/weight"]   # alias
    state, dims = whisper_encoder_state(folder)
    assert dims == {"d_model": 16, "n_layers": 1, "n_heads": 2, "n_mels": 80, "ff_mult": 4}
    model = CTCModel(whisper_tiny(vocab_size=8, **DIMS))
    model.encoder.load_state_dict(state)     # strict: every parameter is covered
    got = model.encoder.blocks[0].mlp[2].weight.detach().numpy()
    assert np.array_equal(got, v["encoder/layer_0/ffn/linear_1/weight"].astype(np.float32))
    (tmp_path / "bad").mkdir()
    with pytest.raises(FileNotFoundError):
        whisper_encoder_state(tmp_path / "bad")


def test_encoder_reproduces_ctranslate2_whisper():
    """Our PyTorch encoder with the bundled Whisper tiny.en weights gives CTranslate2's output."""
    import ctranslate2

    from asr.whisper import bundled_whisper_dir

    state, dims = whisper_encoder_state()
    model = CTCModel(whisper_tiny(vocab_size=8, dropout=0.0)).eval()
    model.encoder.load_state_dict(state)
    torch.manual_seed(0)
    x = torch.randn(1, 3000, 80) * 0.5        # already normalised, 30 s as Whisper expects
    ct2 = ctranslate2.models.Whisper(str(bundled_whisper_dir()), device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(x.transpose(1, 2).contiguous().numpy()),
                              to_cpu=True))
    with torch.no_grad():
        ours, lengths = model.encoder(x, torch.tensor([3000]))
    assert ours.shape == ref.shape == (1, 1500, 384) and lengths.item() == 1500
    assert np.abs(ours.numpy() - ref).mean() < 1e-3 * np.abs(ref).mean()


def test_whisper_logmel_is_log10_power_with_an_8_decade_floor():
    wav = torch.from_numpy(tone_speech("abc dh", seed=0))
    f = WhisperLogMel()(wav)
    assert f.shape == (1 + (len(wav) - 400) // 160, 80)
    assert f.min() >= f.max() - 8.0 - 1e-5
    louder = WhisperLogMel()(10 * wav)     # x10 amplitude = +2 decades of power where not floored
    keep = f > f.max() - 6
    assert torch.allclose((louder - f)[keep], torch.full_like(f[keep], 2.0), atol=1e-3)


@pytest.mark.parametrize("adapter", [0, 2])
def test_whisper_model_is_padding_invariant_and_uses_fixed_normalisation(adapter):
    torch.manual_seed(0)
    model = CTCModel(whisper_tiny(vocab_size=8, subsampling=4 if adapter else 2, adapter_layers=adapter,
                                  adapter_dim=16, **DIMS)).eval()
    assert model.cmvn.mean.unique().tolist() == [-4.0] and model.cmvn.std.unique().tolist() == [4.0]
    x = torch.randn(2, 101, 80)
    with torch.no_grad():
        y, lengths = model(x, torch.tensor([101, 57]))
        alone, l1 = model(x[1:, :57], torch.tensor([57]))
    expect = [51, 29] if not adapter else [26, 15]
    assert lengths.tolist() == expect and l1.tolist() == expect[1:]
    assert torch.allclose(y[1, :expect[1]], alone[0], atol=1e-5)


def test_train_from_pretrained_encoder_then_transcribe(tone_corpus, tmp_path, monkeypatch):
    """`asr train --preset whisper_tiny[_adapter] --pretrained-encoder DIR` starts from those
    weights, trains, and the result transcribes with the Whisper frontend in torch and ONNX Runtime."""
    from typer.testing import CliRunner

    from asr.cli import app
    from asr.inference import load_model
    from asr.trainer import _build_model

    folder, v = fake_whisper(tmp_path / "w")
    cfg = tiny_train_config(tone_corpus, tmp_path / "exp", preset="whisper_tiny", pretrained_encoder=str(folder),
                            model_overrides={**DIMS, "dropout": 0.0}, max_steps=30, lr=2e-3)
    tok = type("T", (), {"vocab_size": 10})()
    built = _build_model(cfg, tok)
    assert np.array_equal(built.encoder.conv1.weight.detach().numpy(), v["encoder/conv1/weight"].astype(np.float32))
    with pytest.raises(ValueError, match="does not match"):
        _build_model(tiny_train_config(tone_corpus, tmp_path / "x", preset="whisper_tiny", pretrained_encoder=str(folder),
                                       model_overrides={"d_model": 32, "n_layers": 1, "n_heads": 2}), tok)

    # The shipped model's recipe: frozen pretrained encoder, a Conformer adapter and the head learn.
    res = CliRunner().invoke(app, ["train", cfg.train_manifest, "--exp-dir", str(tmp_path / "exp"), "--preset",
                                   "whisper_tiny_adapter", "--pretrained-encoder", str(folder), "--tokenizer", "char",
                                   "--max-steps", "30", "--batch-seconds", "8", "--no-augment", "--no-specaugment",
                                   "--threads", "1", "--set", "freeze_encoder=true", "--set",
                                   "model_overrides={d_model: 16, n_layers: 1, n_heads: 2, adapter_dim: 16}"])
    assert res.exit_code == 0, res.output
    model, _ = model_from_checkpoint(load_checkpoint(tmp_path / "exp" / "model.pt"))
    assert (model.config.encoder, model.config.frontend, model.config.subsampling) == ("whisper", "whisper", 4)
    assert len(model.adapter.blocks) == 2
    assert np.array_equal(model.encoder.conv1.weight.detach().numpy(), v["encoder/conv1/weight"].astype(np.float32))
    wav = tmp_path / "x.wav"
    sf.write(wav, tone_speech("head each cab", seed=3), 16000)
    monkeypatch.setenv("ASR_CACHE_DIR", str(tmp_path / "cache"))
    rec = load_model(tmp_path / "exp" / "model.pt", device="cpu")
    assert rec.frame_seconds == 0.04
    expected = rec.transcribe(wav)
    onnx = load_model(tmp_path / "exp" / "model.pt", runtime="onnx", threads=1).transcribe(wav)
    assert onnx.text == expected.text

    # benchmarks/profile_step.py splits a step of this (frozen-encoder) model into its parts.
    out = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "benchmarks" / "profile_step.py"),
                          "--model", str(tmp_path / "exp" / "model.pt"), "--manifest", cfg.train_manifest,
                          "--batches", "2"], capture_output=True, text=True, check=True).stdout
    assert [line.split("|")[1].strip() for line in out.splitlines()[2:]] == [
        "data", "encoder (frozen, forward)", "adapter + head (fwd, bwd, step)"]


def test_encoder_cache_feeds_the_adapter_what_the_frozen_encoder_computes(tone_corpus, tmp_path):
    """encoder_cache_copies: the frozen encoder runs once per copy (clean + augmented), training reads
    its output, the model gives the same logits from the cache as from audio, and a rebuild skips
    finished parts."""
    from dataclasses import replace

    from asr.augment import AugmentConfig
    from asr.data import SpeechDataset
    from asr.encoder_cache import EncodedDataset, build_cache, copy_names
    from asr.manifest import read_manifest
    from asr.trainer import train

    folder, _ = fake_whisper(tmp_path / "w")
    cfg = tiny_train_config(tone_corpus, tmp_path / "exp", preset="whisper_tiny_adapter", pretrained_encoder=str(folder),
                            freeze_encoder=True, encoder_cache_copies=2, augment=True, augment_ramp_steps=10,
                            specaugment=True, max_steps=20, model_overrides={**DIMS, "adapter_dim": 16, "dropout": 0.0})
    with pytest.raises(ValueError, match="needs a frozen encoder"):
        train(replace(cfg, freeze_encoder=False, exp_dir=str(tmp_path / "unfrozen")))
    model, tokenizer = model_from_checkpoint(load_checkpoint(train(cfg)))
    (cache,) = (tmp_path / "exp" / "encoder-cache").iterdir()
    assert sorted(p.name for p in cache.glob("*.json")) == ["aug0-r0-of1.json", "aug1-r0-of1.json", "clean-r0-of1.json"]

    model.eval()
    utts = read_manifest(cfg.train_manifest)
    speech = SpeechDataset(utts, tokenizer, AugmentConfig(), frontend="whisper")
    cached = EncodedDataset(speech, cache, copy_names(2, clean=True))
    assert cached[(3, 0, 0.0)].encoded and len(cached) == len(utts)
    a, b = cached[(3, 0, 1.0)].feats, cached[(3, 1, 1.0)].feats     # two augmented copies differ
    assert not (a.shape == b.shape and torch.equal(a, b))
    clean, feats = cached[(3, 0, 0.0)].feats, speech[(3, 0, 0.0)].feats
    with torch.no_grad():
        n = torch.tensor([feats.shape[0]])
        from_audio, _ = model(feats[None], n)
        from_cache, _ = model(clean[None], torch.tensor([clean.shape[0]]), encoded=True)
    assert torch.allclose(from_audio, from_cache, atol=2e-2)

    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    build_cache(model, speech, cache, copy_names(2, clean=True), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before



def test_encoder_trainable_top_learns_on_top_of_the_cached_bottom(tone_corpus, tmp_path):
    """encoder_trainable_top=1: the cache holds the output of the fixed blocks below the top one;
    the top block and final norm learn while everything below stays as loaded; the trained model
    gives the same logits from that cache as from audio; the cache's fingerprint ignores the top
    weights (so a resumed run finds its cache) but not where the encoder is split."""
    from dataclasses import replace

    from asr.augment import AugmentConfig
    from asr.data import SpeechDataset
    from asr.encoder_cache import EncodedDataset, copy_names, fingerprint
    from asr.manifest import read_manifest
    from asr.trainer import train

    folder, _ = fake_whisper(tmp_path / "w", layers=2)
    cfg = tiny_train_config(tone_corpus, tmp_path / "exp", preset="whisper_tiny_adapter", pretrained_encoder=str(folder),
                            freeze_encoder=True, encoder_trainable_top=1, encoder_cache_copies=1, augment=True,
                            augment_ramp_steps=10, max_steps=8, checkpoint_every=8,
                            model_overrides={**DIMS, "n_layers": 2, "adapter_dim": 16, "dropout": 0.0})
    with pytest.raises(ValueError, match="needs a frozen encoder"):
        train(replace(cfg, freeze_encoder=False, exp_dir=str(tmp_path / "unfrozen")))
    with pytest.raises(ValueError, match="the encoder has 2 blocks"):
        train(replace(cfg, encoder_trainable_top=3, exp_dir=str(tmp_path / "too-many")))
    model, tokenizer = model_from_checkpoint(load_checkpoint(train(cfg)))
    loaded, _ = whisper_encoder_state(folder)
    trained = model.encoder.state_dict()
    fixed = [k for k in loaded if not k.startswith(("blocks.1.", "final_norm."))]
    assert fixed and all(torch.equal(trained[k], loaded[k]) for k in fixed)
    assert not torch.equal(trained["blocks.1.qkv.weight"], loaded["blocks.1.qkv.weight"])
    assert not torch.equal(trained["final_norm.weight"], loaded["final_norm.weight"])

    (cache,) = (tmp_path / "exp" / "encoder-cache").iterdir()
    speech = SpeechDataset(read_manifest(cfg.train_manifest), tokenizer, AugmentConfig(), frontend="whisper")
    model.freeze_encoder(1)
    model.eval()
    assert cache.name == fingerprint(model, speech)
    clean = EncodedDataset(speech, cache, copy_names(1, clean=True))[(3, 0, 0.0)].feats
    feats = speech[(3, 0, 0.0)].feats
    with torch.no_grad():
        from_audio, _ = model(feats[None], torch.tensor([feats.shape[0]]))
        from_cache, _ = model(clean[None], torch.tensor([clean.shape[0]]), encoded=True)
        model.encoder.blocks[1].qkv.weight.mul_(2)
    assert torch.allclose(from_audio, from_cache, atol=2e-2)
    assert fingerprint(model, speech) == cache.name
    model.freeze_encoder(0)
    assert fingerprint(model, speech) != cache.name
