"""Bad input, crashes and untrusted files: clear one-line errors, nothing lost, no code run."""

import os
import pickle
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import asr.trainer
from asr.audio import AudioError, load_audio, stream_audio
from asr.checkpoint import CheckpointError, load_checkpoint, step_checkpoints
from asr.cli import app
from asr.io import atomic_write
from asr.trainer import TrainingError, train

from conftest import tiny_train_config, tone_speech

runner = CliRunner()


def test_truncated_wav_reads_what_is_there(tmp_path):
    p = tmp_path / "full.wav"
    sf.write(p, np.sin(np.arange(32000) / 10.0).astype(np.float32) * 0.5, 16000, subtype="PCM_16")
    data = p.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])     # header still claims 32000 samples
    wav = load_audio(cut)
    assert 15000 < wav.numel() < 17000
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(data[:44])
    with pytest.raises(AudioError, match="header.wav"):
        load_audio(header_only)


def test_clipped_and_silent_audio_transcribe(tiny_model, tmp_path):
    loud = np.clip(tone_speech("bad") * 20, -1, 1)
    sf.write(tmp_path / "clip.wav", loud, 16000)
    sf.write(tmp_path / "silence.wav", np.zeros(8000), 16000)
    res = runner.invoke(app, ["transcribe", str(tmp_path / "clip.wav"), str(tmp_path / "silence.wav"),
                              "--model", str(tiny_model)])
    assert res.exit_code == 0, res.output
    lines = dict(line.split("\t") for line in res.stdout.splitlines())
    assert lines[str(tmp_path / "silence.wav")] == ""


def test_batch_summary_lists_failures(tiny_model, tmp_path):
    sf.write(tmp_path / "ok.wav", tone_speech("egg"), 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    res = runner.invoke(app, ["transcribe", str(tmp_path / "empty.wav"), str(tmp_path / "ok.wav"),
                              "--model", str(tiny_model)])
    assert res.exit_code == 1
    assert "1 of 2 file(s) failed:" in res.stderr
    assert f"  {tmp_path / 'empty.wav'}: empty file" in res.stderr


def test_three_hour_file_streams_in_bounded_memory(tmp_path):
    p = tmp_path / "long.wav"
    sr, block = 8000, 8000 * 600
    with sf.SoundFile(p, "w", sr, 1, subtype="PCM_U8") as f:
        for _ in range(18):                        # 18 x 10 min = 3 h of 8 kHz audio
            f.write(np.random.default_rng(0).uniform(-0.3, 0.3, block).astype(np.float32))
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total, biggest = 0, 0
    for _, chunk in stream_audio(p):
        total += chunk.numel()
        biggest = max(biggest, chunk.numel())
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert total == pytest.approx(3 * 3600 * 16000, abs=100)
    assert biggest <= 30 * 16000
    assert grown_mb < 200          # a whole 3 h at 16 kHz float32 would be ~660 MB


def test_long_transcription_returns_freed_memory_after_each_chunk(tiny_model, monkeypatch):
    import asr.inference as inference

    calls = []
    monkeypatch.setattr(inference, "_malloc_trim", lambda pad: calls.append(pad))
    rec = inference.load_model(tiny_model)
    chunks = [(i * 1.0, torch.from_numpy(tone_speech("egg")).float()) for i in range(3)]
    rec.transcribe_chunks(chunks, words=False)
    assert calls == [0, 0, 0]
    assert (inference._glibc_trim() is not None) == (platform.libc_ver()[0] == "glibc")


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        pickle.dump({"model_config": {}, "model": Evil()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.save({"model_config": {}, "model": Evil()}, tmp_path / "model2.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "model2.pt")
    assert not marker.exists()


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(OSError):
        with atomic_write(p) as f:
            f.write("new partial")
            raise OSError(28, "No space left on device")
    assert p.read_text() == "old"
    assert list(tmp_path.iterdir()) == [p]


def test_atomic_write_gives_the_mode_a_plain_write_would(tmp_path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        with atomic_write(new) as f:
            f.write("x")
        assert new.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        with atomic_write(kept) as f:
            f.write("new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_full_disk_on_stdout_is_a_clear_error(tiny_model, tmp_path):
    if not Path("/dev/full").exists():
        pytest.fail("/dev/full is needed for this test")
    sf.write(tmp_path / "a.wav", tone_speech("bad"), 16000)
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(tmp_path / "a.wav"),
                              "--model", str(tiny_model)], stdout=full, stderr=subprocess.PIPE, text=True)
    assert out.returncode == 1
    assert "No space left on device" in out.stderr and "Traceback" not in out.stderr


def test_bad_manifest_stops_before_training_unless_skipped(tone_corpus, tmp_path):
    m = tmp_path / "train.jsonl"
    lines = (tone_corpus / "train.jsonl").read_text().splitlines()
    base = tone_corpus.resolve()
    lines = [l.replace('"audio_filepath": "', f'"audio_filepath": "{base}/') for l in lines]
    lines.insert(1, '{"audio_filepath": "missing.wav", "text": "bad", "duration": 1.0}')
    m.write_text("\n".join(lines) + "\n")
    args = ["train", str(m), "--exp-dir", str(tmp_path / "exp"), "--preset", "tiny", "--tokenizer", "char",
            "--max-steps", "2", "--batch-seconds", "8", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: {m}:2: ") and "missing.wav: no such file" in res.stderr
    assert "--skip-bad" in res.stderr
    res = runner.invoke(app, args + ["--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"warning: skipped {m}:2" in res.stderr


def test_nan_losses_are_skipped_then_stop_the_run(tone_corpus, tmp_path, monkeypatch):
    real = asr.trainer.compute_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        loss, count = real(*args, **kwargs)
        return (loss * float("nan"), count) if calls["n"] in (3, 4) or calls["n"] > 12 else (loss, count)

    monkeypatch.setattr(asr.trainer, "compute_loss", sometimes_nan)
    monkeypatch.setattr(asr.trainer, "MAX_BAD_STEPS", 5)
    with pytest.raises(TrainingError, match="5 consecutive batches gave a non-finite loss"):
        train(tiny_train_config(tone_corpus, tmp_path / "exp", max_steps=40))
    rows = (tmp_path / "exp" / "train.csv").read_text().splitlines()
    assert rows[1].split(",")[-1] == "2"     # step 10: the two NaN batches were skipped and counted


def test_corrupt_newest_checkpoint_falls_back_to_previous(tone_corpus, tmp_path, capsys):
    exp = tmp_path / "exp"
    train(tiny_train_config(tone_corpus, exp, max_steps=6, checkpoint_every=3))
    newest = step_checkpoints(exp)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])          # torn write
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(newest)
    train(tiny_train_config(tone_corpus, exp, max_steps=8, checkpoint_every=3))
    err = capsys.readouterr().err
    assert f"{newest}: cannot load checkpoint" in err and "resumed from" in err and "checkpoint-3.pt" in err


def test_sigkill_then_resume_gives_the_same_weights(tone_corpus, tmp_path):
    def cmd(exp):
        return [sys.executable, "-m", "asr.cli", "train", str(tone_corpus / "train.jsonl"), "--exp-dir", str(exp),
                "--preset", "tiny", "--tokenizer", "char", "--max-steps", "30", "--checkpoint-every", "5",
                "--batch-seconds", "8", "--warmup-steps", "5", "--device", "cpu", "--set", "keep_last=10"]

    subprocess.run(cmd(tmp_path / "full"), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoint-10.pt").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model.pt").exists()
    res = subprocess.run(cmd(tmp_path / "killed"), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "resumed from" in res.stderr
    a = load_checkpoint(tmp_path / "full" / "checkpoint-30.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "checkpoint-30.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_output_names_cannot_escape_the_output_dir(tmp_path):
    from asr.io import safe_child

    assert safe_child(tmp_path, "a.txt") == tmp_path / "a.txt"
    for bad in ["../x.txt", "/etc/passwd", "..", "", "a/../../b"]:
        with pytest.raises(ValueError):
            safe_child(tmp_path, bad)
    (tmp_path / "link.txt").symlink_to("/tmp/elsewhere.txt")
    with pytest.raises(ValueError, match="outside"):
        safe_child(tmp_path, "link.txt")


def test_debug_flag_shows_the_traceback(tmp_path):
    (tmp_path / "bad.wav").write_text("nope")
    quiet = runner.invoke(app, ["transcribe", str(tmp_path / "missing.pt")])
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output
    loud = subprocess.run([sys.executable, "-m", "asr.cli", "--debug", "transcribe", str(tmp_path / "bad.wav"),
                           "--model", str(tmp_path / "missing.pt")], capture_output=True, text=True)
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "CheckpointError" in loud.stderr
