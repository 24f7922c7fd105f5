"""Export (ONNX, TorchScript), YAML configs with overrides, forced alignment of a given text."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from asr.checkpoint import load_checkpoint, model_from_checkpoint
from asr.cli import app
from asr.decode import greedy_decode
from asr.features import LogMel
from asr.trainer import TrainConfig

from conftest import tone_speech

runner = CliRunner()


def _greedy_texts(log_probs, lengths, tok):
    return [r.text for r in greedy_decode(torch.as_tensor(log_probs), torch.as_tensor(lengths), tok)]


def test_onnx_and_torchscript_match_pytorch(tiny_model, tmp_path):
    import onnxruntime as ort

    model, tok = model_from_checkpoint(load_checkpoint(tiny_model))
    texts = ["bad face", "egg", "head each cab"]
    feats = [LogMel()(torch.from_numpy(tone_speech(t, seed=i))) for i, t in enumerate(texts)]
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    with torch.no_grad():
        logits, out_len = model(x, lengths)
    expected = _greedy_texts(logits.log_softmax(-1), out_len, tok)
    assert expected == texts

    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt")):
        res = runner.invoke(app, ["export", "--format", fmt, "--output", str(tmp_path / name), "--model", str(tiny_model)])
        assert res.exit_code == 0, res.output
        sidecar = json.loads((tmp_path / f"{name}.tokens.json").read_text())
        assert sidecar["pieces"] == tok.pieces and sidecar["blank"] == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    lp, ol = sess.run(None, {"feats": x.numpy(), "lengths": lengths.numpy()})
    assert np.allclose(lp, logits.log_softmax(-1).numpy(), atol=1e-4)
    assert _greedy_texts(lp, ol, tok) == expected
    ts = torch.jit.load(str(tmp_path / "m.pt"))
    lp2, ol2 = ts(x, lengths)
    assert _greedy_texts(lp2, ol2, tok) == expected

    res = runner.invoke(app, ["export", "--output", str(tmp_path / "q.onnx"), "--model", str(tiny_model), "--quantize"])
    assert res.exit_code == 0, res.output
    lpq, olq = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"feats": x.numpy(), "lengths": lengths.numpy()})
    assert lpq.shape == lp.shape


def test_onnx_runtime_transcribes_like_torch(tiny_model, tmp_path, monkeypatch):
    from asr.inference import load_model

    monkeypatch.setenv("ASR_CACHE_DIR", str(tmp_path / "cache"))
    wav = tmp_path / "x.wav"
    sf.write(wav, tone_speech("head each cab", seed=3), 16000)
    expected = load_model(tiny_model, device="cpu").transcribe(wav)
    onnx = load_model(tiny_model, runtime="onnx", threads=1).transcribe(wav)
    assert onnx.text == expected.text == "head each cab"
    assert [w.word for w in onnx.words] == [w.word for w in expected.words]
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    res = runner.invoke(app, ["transcribe", str(wav), "--model", str(tiny_model), "--runtime", "onnx"])
    assert res.exit_code == 0 and res.stdout.strip() == "head each cab", res.output
    assert cached[0].stat().st_mtime_ns == stamp            # exported once, then reused
    res = runner.invoke(app, ["transcribe", str(wav), "--model", str(tiny_model), "--runtime", "tf"])
    assert res.exit_code != 0
    assert load_model(tiny_model, runtime="onnx-int8", threads=1).transcribe(wav).text == expected.text
    assert len(list((tmp_path / "cache" / "onnx").glob("*-int8.onnx"))) == 1


def test_yaml_config_precedence(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train_manifest: a.jsonl\nlr: 0.005\nepochs: 7\nmodel_overrides: {d_model: 96}\n")
    res = runner.invoke(app, ["train", "--config", str(cfg_file), "--epochs", "9", "--set", "grad_clip=1.5",
                              "--set", "model_overrides.n_layers=3", "--print-config"])
    assert res.exit_code == 0, res.output
    import yaml
    cfg = yaml.safe_load(res.stdout)
    assert cfg["train_manifest"] == "a.jsonl" and cfg["lr"] == 0.005       # from YAML
    assert cfg["epochs"] == 9                                              # CLI beats YAML
    assert cfg["grad_clip"] == 1.5                                         # --set beats all
    assert cfg["model_overrides"] == {"d_model": 96, "n_layers": 3}
    assert TrainConfig.from_dict(cfg).lr == 0.005
    res = runner.invoke(app, ["train", "x.jsonl", "--set", "nope=1"])
    assert res.exit_code == 1 and "expected KEY=VALUE" in res.stderr


def test_align_known_text(tiny_model, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_speech("egg bad"), 16000)
    res = runner.invoke(app, ["align", str(wav), "egg bad", "--model", str(tiny_model), "--format", "ctm",
                              "--plot", str(tmp_path / "a.png")])
    assert res.exit_code == 0, res.output
    rows = [l.split() for l in res.stdout.splitlines()]
    assert [r[4] for r in rows] == ["egg", "bad"]
    assert float(rows[0][2]) == pytest.approx(0.15, abs=0.12)
    assert float(rows[1][2]) == pytest.approx(0.65, abs=0.12)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
