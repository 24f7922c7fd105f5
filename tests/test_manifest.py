import json

import pytest

from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest


def test_round_trip_relative_paths(tmp_path):
    (tmp_path / "audio").mkdir()
    utts = [Utterance(str(tmp_path / "audio" / "a.wav"), "hello", 1.5, {"id": "u1", "speaker": "s"})]
    write_manifest(tmp_path / "m.jsonl", utts)
    row = json.loads((tmp_path / "m.jsonl").read_text())
    assert row == {"audio_filepath": "audio/a.wav", "text": "hello", "duration": 1.5, "id": "u1", "speaker": "s"}
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].audio_filepath == str(tmp_path / "audio" / "a.wav")
    assert back[0].id == "u1" and back[0].extra["speaker"] == "s"


def test_bad_lines_name_file_and_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_bytes(b'{"audio_filepath": "a.wav", "text": "ok", "duration": 1}\n'
                  b'\n'
                  b'{"text": "no audio"}\n'
                  b'not json\n'
                  b'{"audio_filepath": "b.wav", "text": "x", "duration": -1}\n'
                  b'\xff\xfe\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: empty line"):
        read_manifest(m)
    errors = []
    utts = read_manifest(m, skip_bad=True, errors=errors)
    assert len(utts) == 1
    assert [e.split(": ")[0].rsplit(":", 1)[1] for e in errors] == ["2", "3", "4", "5", "6"]
    assert errors[0].endswith(":2: empty line")
    assert errors[1].endswith(":3: missing key 'audio_filepath'")


def test_missing_duration_when_required(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"audio_filepath": "a.wav", "text": "ok"}\n')
    assert read_manifest(m)[0].duration is None
    with pytest.raises(ManifestError, match="missing duration"):
        read_manifest(m, require_duration=True)


def test_paths_relative_to_cwd_are_rebased_on_the_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "wav").mkdir(parents=True)
    (tmp_path / "out" / "wav" / "a.wav").write_bytes(b"x")
    write_manifest("out/m.jsonl", [Utterance("out/wav/a.wav", "hi", 1.0)])
    assert json.loads((tmp_path / "out" / "m.jsonl").read_text())["audio_filepath"] == "wav/a.wav"
    assert read_manifest("out/m.jsonl")[0].audio_filepath == str(tmp_path / "out" / "wav" / "a.wav")


def test_training_entries_are_checked_with_line_numbers(tmp_path):
    import numpy as np
    import soundfile as sf

    from asr.data import validate_utterances
    from asr.tokenizer import CharTokenizer

    sf.write(tmp_path / "ok.wav", np.zeros(16000, np.float32), 16000)
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join([
        '{"audio_filepath": "ok.wav", "text": "fine", "duration": 1.0}',
        '{"audio_filepath": "nope.wav", "text": "x", "duration": 1}',
        '{"audio_filepath": "ok.wav", "text": "wrong length", "duration": 3.0}',
        '{"audio_filepath": "ok.wav", "text": "\u4f60\u597d", "duration": 1.0}',
    ]) + "\n")
    problems = validate_utterances(read_manifest(m), CharTokenizer())
    assert [p.split(": ")[0] for p in problems] == [f"{m}:2", f"{m}:3", f"{m}:4"]
    assert "no such file" in problems[0]
    assert "duration 3.00 s but the audio lasts 1.00 s" in problems[1]
    assert "no characters the tokenizer knows" in problems[2]
