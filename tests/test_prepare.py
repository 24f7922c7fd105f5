"""Corpus layouts -> manifests, on tiny trees generated here."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from asr.cli import app
from asr.manifest import read_manifest
from asr.prepare import (PrepareError, commonvoice_to_manifest, folder_to_manifest, kaldi_to_manifest,
                         manifest_to_kaldi)
from asr.data import load_utterance

runner = CliRunner()


def wav(path, seconds, sr=16000, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format=fmt)


def test_kaldi_round_trip_with_segments(tmp_path):
    d = tmp_path / "data"
    wav(tmp_path / "rec1.wav", 4.0)
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'rec1.wav'}\n")
    (d / "segments").write_text("spk1-u1 rec1 0.5 1.5\nspk1-u2 rec1 2.0 3.5\n")
    (d / "text").write_text("spk1-u1 HELLO THERE\nspk1-u2 GOOD BYE\n")
    (d / "utt2spk").write_text("spk1-u1 spk1\nspk1-u2 spk1\n")
    out = tmp_path / "m.jsonl"
    assert kaldi_to_manifest(d, out) == 2
    utts = read_manifest(out)
    assert [u.extra["offset"] for u in utts] == [0.5, 2.0]
    assert [u.duration for u in utts] == [1.0, 1.5]
    assert load_utterance(utts[1]).numel() == 24000
    back = tmp_path / "back"
    manifest_to_kaldi(out, back)
    assert (back / "text").read_text() == (d / "text").read_text()
    assert (back / "segments").read_text().split("\n")[0].split()[2:] == ["0.500", "1.500"]
    assert (back / "spk2utt").read_text() == "spk1 spk1-u1 spk1-u2\n"


def test_kaldi_without_segments_and_piped_entries(tmp_path):
    d = tmp_path / "data"
    wav(d / "a.wav", 1.0)
    (d / "wav.scp").write_text("a a.wav\n")
    (d / "text").write_text("a some words\n")
    assert kaldi_to_manifest(d, tmp_path / "m.jsonl") == 1
    assert read_manifest(tmp_path / "m.jsonl")[0].duration == pytest.approx(1.0)
    (d / "wav.scp").write_text("a a.wav\nb sox b.flac -t wav - |\n")
    with pytest.raises(PrepareError, match=r"wav.scp:2: piped command entries are not supported"):
        kaldi_to_manifest(d, tmp_path / "m2.jsonl")


def test_librispeech_layout(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    for spk, ch, n in [("84", "121123", 2), ("174", "50561", 1)]:
        folder = root / spk / ch
        lines = []
        for i in range(n):
            uid = f"{spk}-{ch}-{i:04d}"
            wav(folder / f"{uid}.flac", 0.5 + i, fmt="FLAC")
            lines.append(f"{uid} WORDS NUMBER {i}")
        (folder / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["prepare", "librispeech", str(root), str(tmp_path / "ls.jsonl")])
    assert res.exit_code == 0, res.output
    utts = read_manifest(tmp_path / "ls.jsonl")
    assert sorted(u.id for u in utts) == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    assert {u.extra["speaker"] for u in utts} == {"84", "174"}
    assert all(u.text.startswith("words number") for u in utts)


def test_commonvoice_layout(tmp_path):
    root = tmp_path / "cv" / "en"
    wav(root / "clips" / "common_voice_en_1.wav", 1.0)
    wav(root / "clips" / "common_voice_en_2.ogg", 2.0, fmt="OGG")
    (root / "test.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\n"
        "abc\tcommon_voice_en_1.wav\tHello, world!\t2\n"
        "def\tcommon_voice_en_2.ogg\t\"Quoted\" words\t1\n")
    assert commonvoice_to_manifest(root / "test.tsv", tmp_path / "cv.jsonl") == 2
    utts = read_manifest(tmp_path / "cv.jsonl")
    assert [u.text for u in utts] == ["Hello, world!", '"Quoted" words']
    assert utts[1].duration == pytest.approx(2.0, abs=0.01)
    (root / "bad.tsv").write_text("client_id\tpath\tsentence\nx\tmissing.mp3\thi\n")
    with pytest.raises(PrepareError, match=r"bad.tsv:2: .*missing.mp3 is missing"):
        commonvoice_to_manifest(root / "bad.tsv", tmp_path / "bad.jsonl")


def test_folder_layout(tmp_path):
    wav(tmp_path / "rec" / "one.wav", 1.0)
    (tmp_path / "rec" / "one.txt").write_text("first   recording\n")
    wav(tmp_path / "rec" / "sub" / "two.flac", 1.0, fmt="FLAC")
    (tmp_path / "rec" / "sub" / "two.txt").write_text("second")
    wav(tmp_path / "rec" / "untranscribed.wav", 1.0)
    assert folder_to_manifest(tmp_path / "rec", tmp_path / "f.jsonl") == 2
    rows = [json.loads(l) for l in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["first recording", "second"]
    res = runner.invoke(app, ["prepare", "folder", str(tmp_path / "empty"), str(tmp_path / "x.jsonl")])
    assert res.exit_code == 1 and "no audio files" in res.stderr
