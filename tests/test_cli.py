import json

import pytest

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from asr.cli import app
from asr.inference import default_model_path

from conftest import tone_speech

runner = CliRunner()


def test_transcribe_text_and_json(tiny_model, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b b.flac"
    sf.write(a, tone_speech("bad face"), 16000)
    sf.write(b, tone_speech("egg"), 16000)
    res = runner.invoke(app, ["transcribe", str(a), "--model", str(tiny_model)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "bad face"
    res = runner.invoke(app, ["transcribe", str(a), str(b), "--model", str(tiny_model), "--format", "json"])
    assert res.exit_code == 0
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["bad face", "egg"]
    words = rows[0]["words"]
    assert [w["word"] for w in words] == ["bad", "face"]
    # Known answer built into the input: 0.15 s lead-in, 0.1 s per letter, 0.15 s around the space.
    assert words[0]["start"] == pytest.approx(0.15, abs=0.12)
    assert words[0]["end"] == pytest.approx(0.45, abs=0.12)
    assert words[1]["start"] == pytest.approx(0.65, abs=0.12)
    assert words[1]["end"] == pytest.approx(1.05, abs=0.12)
    assert all(0 < w["confidence"] <= 1 for w in words)


def test_subtitle_and_ctm_formats(tiny_model, tmp_path):
    a = tmp_path / "clip one.wav"
    sf.write(a, tone_speech("bad face egg"), 16000)
    out = tmp_path / "out"
    for fmt in ("srt", "vtt", "ctm", "txt", "json"):
        res = runner.invoke(app, ["transcribe", str(a), "--model", str(tiny_model), "--format", fmt,
                                  "--output-dir", str(out)])
        assert res.exit_code == 0, res.output
    srt = (out / "clip one.srt").read_text()
    assert srt.startswith("1\n00:00:00,") and "-->" in srt and "bad face egg" in srt
    assert (out / "clip one.vtt").read_text().startswith("WEBVTT\n\n00:00:00.")
    ctm = [line.split() for line in (out / "clip one.ctm").read_text().splitlines()]
    assert [c[4] for c in ctm] == ["bad", "face", "egg"]
    assert all(c[0] == "clip_one" and c[1] == "1" for c in ctm)
    assert (out / "clip one.txt").read_text() == "bad face egg\n"
    res = runner.invoke(app, ["transcribe", str(a), str(a), "--model", str(tiny_model), "--format", "srt"])
    assert res.exit_code == 1 and "needs --output-dir" in res.stderr


def test_bad_file_is_reported_and_others_still_transcribed(tiny_model, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone_speech("head"), 16000)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    res = runner.invoke(app, ["transcribe", str(bad), str(good), str(tmp_path / "missing.wav"),
                              "--model", str(tiny_model)])
    assert res.exit_code == 1
    assert f"{good}\thead" in res.stdout
    assert f"error: {bad}: not a readable audio file" in res.stderr
    assert "missing.wav: no such file" in res.stderr
    assert "2 of 3 file(s) failed" in res.stderr
    assert "Traceback" not in res.output


def test_silence_gives_empty_transcript(tiny_model, tmp_path):
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(16000, np.float32), 16000)
    res = runner.invoke(app, ["transcribe", str(p), "--model", str(tiny_model)])
    assert res.exit_code == 0 and res.stdout.strip() == ""


def test_evaluate_last_line_and_report(tiny_model, tone_corpus, tmp_path):
    res = runner.invoke(app, ["evaluate", str(tone_corpus / "train.jsonl"), "--model", str(tiny_model),
                              "--report", str(tmp_path / "rep"), "--beam-size", "4", "--beam-size-token", "8",
                              "--blank-skip", "0.99"])
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1].split()
    assert last[0::2] == ["WER", "SUB", "DEL", "INS", "RTF", "N"]
    assert float(last[1]) == 0.0 and int(last[-1]) == 40 and float(last[9]) > 0
    assert (tmp_path / "rep" / "wer-summary-train.txt").exists()
    assert "ref=" in (tmp_path / "rep" / "recogs-train.txt").read_text()


def test_bad_model_file_is_one_line_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_speech("bad"), 16000)
    res = runner.invoke(app, ["transcribe", str(wav), "--model", str(bad)])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: {bad}: cannot load checkpoint") and "Traceback" not in res.output


def test_default_model_is_shipped_and_transcribes(tmp_path):
    assert default_model_path().is_file()
    assert default_model_path().stat().st_size < 25 * 2**20
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_speech("bad"), 16000)
    res = runner.invoke(app, ["transcribe", str(wav)])
    assert res.exit_code == 0, res.output


def test_lm_choice_defaults_to_shipped_lm_only_for_shipped_model(tmp_path):
    from asr.cli import _lm_choice

    assert _lm_choice("auto", None) == "default"          # asr transcribe x.wav: shipped model + its LM
    assert _lm_choice("auto", tmp_path / "m.pt") is None   # your own model: no LM unless asked
    assert _lm_choice("none", None) is None
    assert _lm_choice("default", tmp_path / "m.pt") == "default"
    assert _lm_choice("lm.pt", None) == "lm.pt"


def test_cli_decoding_defaults_are_the_library_defaults():
    """Without --lm-weight / --word-score / --beam-size, an LM gets the values tuned for its kind."""
    import inspect

    import asr
    from asr.cli import evaluate_cmd, transcribe_cmd
    from asr.decode import LM_DEFAULTS, DecodingOptions

    d = DecodingOptions()
    for fn in (transcribe_cmd, evaluate_cmd):
        params = inspect.signature(fn).parameters
        assert params["lm_weight"].default.default is None and params["word_score"].default.default is None
        assert params["beam_size_token"].default.default is None
        assert params["blank_skip"].default.default == d.blank_skip_threshold
    o = asr.load_model(lm="default").options            # the shipped LM is the word n-gram
    assert {k: getattr(o, k) for k in LM_DEFAULTS["ngram"]} == LM_DEFAULTS["ngram"]
    o = asr.load_model(lm="default", beam_size=4, lm_weight=0.25).options
    assert (o.beam_size, o.lm_weight, o.word_score) == (4, 0.25, LM_DEFAULTS["ngram"]["word_score"])
    assert o.beam_size_token == LM_DEFAULTS["ngram"]["beam_size_token"]
    assert asr.load_model(lm="default", beam_size_token=0).options.beam_size_token == 0    # 0: 4 x the beam


def test_average_interpolates_weights_and_refuses_other_models(tiny_model, tmp_path):
    import torch

    from asr.checkpoint import load_checkpoint, step_checkpoints, write_checkpoint

    a, b = step_checkpoints(tiny_model.parent)[-2:]
    out = tmp_path / "soup.pt"
    res = runner.invoke(app, ["average", str(a), str(b), "--weights", "1,3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    sa, sb, so = (load_checkpoint(p) for p in (a, b, out))
    for k, v in so["model"].items():
        if v.is_floating_point():
            assert torch.allclose(v, 0.25 * sa["model"][k] + 0.75 * sb["model"][k], atol=1e-6), k
    assert so["averaged"] == [f"{a} x 0.250", f"{b} x 0.750"] and "optimizer" not in so

    # --modules: only the encoder is mixed, the rest is the last model's
    res = runner.invoke(app, ["average", str(a), str(b), "--weights", "1,3", "--modules", "encoder", "-o", str(out)])
    assert res.exit_code == 0, res.output
    so = load_checkpoint(out)
    mixed = [k for k in so["model"] if k.startswith("encoder.")]
    assert mixed and len(mixed) < len(so["model"])
    for k, v in so["model"].items():
        want = 0.25 * sa["model"][k] + 0.75 * sb["model"][k] if k in mixed else sb["model"][k]
        assert torch.allclose(v, want, atol=1e-6), k
    assert so["averaged"][-1] == "only encoder"
    res = runner.invoke(app, ["average", str(a), str(b), "--modules", "decoder", "-o", str(out)])
    assert res.exit_code == 1 and "no parameter" in res.stderr

    res = runner.invoke(app, ["average", str(a), str(b), "--weights", "1", "-o", str(out)])
    assert res.exit_code == 1 and res.stderr.startswith("error: need one weight") and "Traceback" not in res.output
    other = dict(sa, model_config={**sa["model_config"], "vocab_size": sa["model_config"]["vocab_size"] + 1})
    write_checkpoint(tmp_path / "other.pt", other)
    res = runner.invoke(app, ["average", str(tmp_path / "other.pt"), str(b), "-o", str(out)])
    assert res.exit_code == 1 and "cannot average them" in res.stderr
