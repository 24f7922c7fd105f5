"""Smoke runs of the recipes on tiny generated data: every stage produces its outputs, and a rerun
skips finished stages."""

import argparse
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.decode import LM_DEFAULTS
from asr.manifest import read_manifest, write_manifest
from asr.ngram import load_ngram
from conftest import tone_speech

ROOT = Path(__file__).resolve().parents[1]


def load_recipe(name):
    path = ROOT / "recipes" / name / "run.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_librispeech(root: Path) -> None:
    texts = ["bad face", "egg head", "cab each", "fade bag", "dab cage", "head bead"]
    for subset, spk in (("train-clean-100", "19"), ("dev-clean", "84"), ("test-clean", "61")):
        folder = root / subset / spk / "100"
        folder.mkdir(parents=True)
        lines = []
        for i, t in enumerate(texts if subset.startswith("train") else texts[:2]):
            uid = f"{spk}-100-{i:04d}"
            sf.write(folder / f"{uid}.flac", tone_speech(t, seed=i), 16000, format="FLAC")
            lines.append(f"{uid} {t.upper()}")
        (folder / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")


def test_librispeech_recipe_smoke(tmp_path, capsys):
    make_librispeech(tmp_path / "LibriSpeech")
    recipe = load_recipe("librispeech")
    args = ["--corpus", str(tmp_path / "LibriSpeech"), "--out", str(tmp_path / "exp"), "--vocab-size", "20",
            "--preset", "tiny", "--nproc", "1", "--epochs", "1", "--batch-seconds", "5", "--warmup-steps", "1",
            "--beam-size", "2", "--lm-steps", "5", "--train-args", "--max-steps", "2", "--device", "cpu", "--threads", "1"]
    recipe.main(args)
    exp = tmp_path / "exp"
    assert (exp / "train-clean-100.jsonl").exists() and (exp / "train.jsonl").exists()
    assert (exp / "train" / "tokenizer.pt").exists() and (exp / "train" / "model.pt").exists()
    results = (exp / "RESULTS.md").read_text()
    assert "| dev-clean | greedy |" in results and "| test-clean | beam 2 |" in results
    assert "| test-clean | beam 2 + LM |" in results and (exp / "lm" / "lm.pt").exists()
    capsys.readouterr()
    recipe.main(args)
    err = capsys.readouterr().err
    assert all(f"stage {n} (" in err and "done, skipped" in err for n in range(1, 6))


def test_textside_ablation_smoke(tone_corpus, tmp_path):
    import torch

    from asr.tokenizer import CharTokenizer

    text = tmp_path / "lm.txt"
    text.write_text("bad face\negg head\ncab dab\n" * 20)
    torch.save(CharTokenizer().to_dict(), tmp_path / "tokenizer.pt")
    recipe = load_recipe("textside")
    recipe.main(["--out", str(tmp_path / "exp"), "--train", str(tone_corpus / "train.jsonl"),
                 "--dev", str(tone_corpus / "valid.jsonl"), "--test", str(tone_corpus / "valid.jsonl"),
                 "--tokenizer", str(tmp_path / "tokenizer.pt"), "--lm-text", str(text),
                 "--lm-steps", "20", "--embed-dim", "16", "--lm-hidden", "24", "--preset", "tiny",
                 "--minutes", "0", "--max-steps", "3", "--nproc", "1", "--batch-seconds", "8",
                 "--train-args", "--device", "cpu", "--threads", "1", "--warmup-steps", "1"])
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    for variant in ("plain", "shared", "joint", "transfer", "all"):
        assert f"| {variant} | valid | greedy |" in results and f"| {variant} | valid | beam+LM |" in results

    # Reusing that LM, two runs side by side, a second seed for `plain` only, first 2 test utterances.
    recipe.main(["--out", str(tmp_path / "exp2"), "--train", str(tone_corpus / "train.jsonl"),
                 "--dev", str(tone_corpus / "valid.jsonl"), "--test", str(tone_corpus / "valid.jsonl"),
                 "--tokenizer", str(tmp_path / "tokenizer.pt"), "--lm-text", str(text),
                 "--lm", str(tmp_path / "exp" / "lm" / "lm.pt"), "--preset", "tiny", "--parallel", "2",
                 "--repeat-seeds", "1", "--repeat-variants", "plain", "--max-test-utterances", "2",
                 "--minutes", "0", "--max-steps", "2", "--nproc", "1", "--batch-seconds", "8",
                 "--train-args", "--device", "cpu", "--threads", "1", "--warmup-steps", "1"])
    results = (tmp_path / "exp2" / "RESULTS.md").read_text()
    plain = [line for line in results.splitlines() if line.startswith("| plain | valid | greedy |")]
    assert len(plain) == 1 and plain[0].split("|")[5].count("/") == 1       # two seeds
    shared = [line for line in results.splitlines() if line.startswith("| shared | valid | greedy |")]
    assert shared[0].split("|")[5].count("/") == 0
    assert (tmp_path / "exp2" / "plain-seed1" / "train.log").stat().st_size > 0
    assert len(read_manifest(tmp_path / "exp2" / "tests" / "valid.jsonl")) == 2


QUOTES = ["my purple walrus hums a quiet tune", "a very gentle knight came riding by",
          "the moon was a ghostly galleon", "so we sailed on into the night"]


def fake_gcide(path: Path) -> Path:
    """A dictd file in GCIDE's layout: quotations indented 12 spaces, most ending in an author mark."""
    import gzip
    text = ("Mercy \\Mer\"cy\\, n.\n   Compassion.\n   [1913 Webster]\n\n"
            f"            {QUOTES[0].capitalize()}. --Shak.\n      [1913 Webster]\n\n"
            f"            {QUOTES[1].capitalize()}; {QUOTES[2]}\n"
            "                                          --Spenser.\n\n"
            f"            {QUOTES[3].capitalize()}.\n\n   Not a quotation: the definition text.\n")
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_gcide_quotations(tmp_path, monkeypatch):
    """Quotations (multi-line, with or without an author mark) cut into sentences; definitions skipped."""
    load_recipe("offline_en")
    import text as textprep
    monkeypatch.setattr(textprep, "GCIDE", fake_gcide(tmp_path / "gcide.dict.dz"))
    assert [textprep.normalize_text(q) for q in textprep.gcide_quotations()] == QUOTES
    # a sentence sharing a word 6-gram with known text is not out of domain
    assert set(textprep.ood_sentences(["and my purple walrus hums a quiet tune today"], 10)) == set(QUOTES[1:])


def test_offline_en_second_voice_jobs(tmp_path, monkeypatch):
    """--mbrola-share / --rhvoice-share: a share of the training sentences and spans spoken again by MBROLA
    or RHVoice voices, as new utterances; every other utterance and voice stays as it was, a larger share
    keeps a smaller one's, and one engine's share leaves the other's utterances as they were."""
    recipe = load_recipe("offline_en")
    import synth
    (tmp_path / "text").mkdir()
    for split, n in (("train", 40), ("dev", 5), ("test", 5), ("train-extra", 30), ("train-short", 20)):
        (tmp_path / "text" / f"{split}.txt").write_text("".join(f"{split} sentence {i}\n" for i in range(n)))
    plain = recipe._jobs(tmp_path, 0)
    assert "train-mbrola" not in plain
    assert recipe._jobs(tmp_path, 0, {"espeak"}, shares={"mbrola": 0.5}) == recipe._jobs(tmp_path, 0, {"espeak"})
    half = recipe._jobs(tmp_path, 0, shares={"mbrola": 0.5})
    assert {k: v for k, v in half.items() if k != "train-mbrola"} == plain
    mb = half["train-mbrola"]
    by_id = {j.utt_id: j for k in ("train", "train-short", "train-extra") for j in plain[k]}
    assert 20 < len(mb) < 70 and all(j.utt_id.startswith("mbrola-") for j in mb)
    assert all(by_id[j.utt_id.removeprefix("mbrola-")].text == j.text for j in mb)
    names = {f"mbrola:mb-{v}" for v in synth.MBROLA_NATIVE} | {f"mbrola:mb-{v}-en" for v in synth.MBROLA_ACCENTED}
    assert {j.voice for j in mb} <= names and len({j.voice for j in mb}) > 5
    bigger = recipe._jobs(tmp_path, 0, shares={"mbrola": 0.8})["train-mbrola"]
    assert all(j in bigger for j in mb) and len(bigger) > len(mb)
    # --extra-from-hours leaves out the first extra sentences' MBROLA copies too, and no other
    skip = recipe._jobs(tmp_path, 0, extra_from=10, shares={"mbrola": 0.5})["train-mbrola"]
    assert skip == [j for j in mb if not (j.utt_id.startswith("mbrola-extra-") and int(j.utt_id[-6:]) < 10)]
    both = recipe._jobs(tmp_path, 0, shares={"mbrola": 0.5, "rhvoice": 0.5})
    assert both["train-mbrola"] == mb
    rh = both["train-rhvoice"]
    assert 20 < len(rh) < 70 and all(j.utt_id.startswith("rhvoice-") for j in rh)
    assert {j.voice for j in rh} == {f"rhvoice:{v}" for v in synth.RHVOICE_TRAIN}
    assert {j.utt_id.removeprefix("rhvoice-") for j in rh} != {j.utt_id.removeprefix("mbrola-") for j in mb}
    three = recipe._jobs(tmp_path, 0, shares={"mbrola": 0.5, "rhvoice": 0.5, "pico": 0.5})
    assert three["train-mbrola"] == mb and three["train-rhvoice"] == rh
    pico = three["train-pico"]
    assert 20 < len(pico) < 70 and {j.voice for j in pico} == {f"pico:{v}" for v in synth.PICO_TRAIN}
    # without the voices, synthesis stops with a hint, unless no MBROLA utterance is asked for
    monkeypatch.setattr(synth, "available_engines", lambda: {"espeak": True, "mbrola": False, "sox": True})
    monkeypatch.setattr(synth, "run_jobs", lambda jobs, out, workers: ({}, []))
    args = argparse.Namespace(engines="all", synth_splits="all", mbrola_share=0.3, rhvoice_share=0, pico_share=0, seed=0,
                              extra_from_hours=0, workers=1)
    with pytest.raises(SystemExit, match="mbrola-share 0"):
        recipe.stage_synth(args, tmp_path)
    args.mbrola_share = 0
    recipe.stage_synth(args, tmp_path)


@pytest.mark.parametrize("voice", ["rhvoice:clb", "pico:en-GB"])
def test_offline_en_second_voice_command(tmp_path, monkeypatch, voice):
    """An RHVoice job runs RHVoice-test with its voice, a drawn rate and pitch and the text on stdin; a Pico
    job runs pico2wave with its language and the rate and pitch as Pico's markup around the text. The
    result goes through sox to 16 kHz like every engine's (both engines are in Debian's non-free part)."""
    load_recipe("offline_en")
    import synth
    calls = []
    # where each program's output path stands (after which flag, how far) and the rate it writes
    output = {"RHVoice-test": ("-o", 1, 24000), "pico2wave": ("-w", 1, 16000), "sox": ("-b", 2, 16000)}

    def fake_run(cmd, stdin=None):   # one second of silence at the rate each program writes
        calls.append((cmd, stdin))
        flag, offset, rate = output[cmd[0]]
        sf.write(cmd[cmd.index(flag) + offset], np.zeros(rate, dtype="float32"), rate)
    monkeypatch.setattr(synth, "_run", fake_run)
    uid = f"{voice.split(':')[0]}-train-000001"
    _, duration = synth.synthesize(synth.Job(uid, "hello there", voice, 7), tmp_path)
    (cmd, stdin), (sox, _) = calls
    if voice.startswith("rhvoice"):
        assert cmd[:3] == ["RHVoice-test", "-p", "clb"] and stdin == "hello there"
        rate, pitch = int(cmd[cmd.index("-r") + 1]), int(cmd[cmd.index("-t") + 1])
    else:
        assert cmd[:3] == ["pico2wave", "-l", "en-GB"] and stdin is None
        m = re.fullmatch(r"<speed level='(\d+)'><pitch level='(\d+)'>hello there</pitch></speed>", cmd[-1])
        rate, pitch = int(m[1]), int(m[2])
    assert 80 <= rate <= 125 and 80 <= pitch <= 125
    assert sox[0] == "sox" and sox[sox.index("-r") + 1] == "16000"
    assert duration == 1.0 and (tmp_path / "wav" / f"{uid}.wav").exists()


def test_offline_en_recipe_smoke(tmp_path, capsys, monkeypatch):
    """Text -> espeak-ng speech -> manifests -> BPE -> word n-gram -> a few training steps -> scores -> export;
    a rerun skips every stage, and synthesis redoes only a missing utterance."""
    recipe = load_recipe("offline_en")
    monkeypatch.setattr(recipe, "ASTERISK_SOUNDS", tmp_path / "no-asterisk")   # 428 prompts: too slow here
    monkeypatch.setattr(recipe.textprep, "GCIDE", fake_gcide(tmp_path / "gcide.dict.dz"))
    out = tmp_path / "exp"
    args = ["--out", str(out), "--text-sources", "wordnet", "--engines", "espeak", "--hours", "0.01",
            "--n-dev", "3", "--n-test", "3", "--short-spans", "4", "--n-short-eval", "2", "--n-ood", "2",
            "--workers", "2", "--vocab-size", "40", "--preset", "tiny",
            "--nproc", "1", "--train-minutes", "2", "--batch-seconds", "10", "--warmup-steps", "1",
            "--valid-every", "2", "--valid-utterances", "2", "--beam-size", "2",
            "--train-args", "--max-steps", "2", "--device", "cpu", "--threads", "1"]
    recipe.main(args)
    train, dev, test = (read_manifest(out / f"{n}.jsonl") for n in ("train", "dev", "test-unseen"))
    assert (len(train), len(dev), len(test)) == (14, 3, 3)
    assert all(u.extra["voice"].startswith("espeak:") and u.duration > 0.3 for u in train + dev + test)
    # test-unseen: an accent never used for training, sentences never in training
    assert not {u.extra["voice"] for u in test} & {u.extra["voice"] for u in train}
    assert not {u.text for u in test} & {u.text for u in train}
    # short utterances: 1-3 words of a split's own sentences, said alone; test's by unseen voices
    short = {n: read_manifest(out / f"{n}.jsonl") for n in ("dev-short", "test-unseen-short")}
    short["train"] = [u for u in train if u.extra["id"].startswith("train-short-")]
    assert [len(v) for v in short.values()] == [2, 2, 4]
    for name, full in (("train", train[:10]), ("dev-short", dev), ("test-unseen-short", test)):
        assert all(1 <= len(u.text.split()) <= 3 and any(f" {u.text} " in f" {f.text} " for f in full)
                   for u in short[name])
    assert not {u.extra["voice"] for u in short["test-unseen-short"]} & {u.extra["voice"] for u in train}
    # out-of-domain sentences (the fake GCIDE's quotations), in no training text; test's by unseen voices
    ood = {n: read_manifest(out / f"{n}.jsonl") for n in ("dev-ood", "test-unseen-ood")}
    assert [len(v) for v in ood.values()] == [2, 2]
    assert {u.text for v in ood.values() for u in v} <= set(QUOTES)
    assert not {u.extra["voice"] for u in ood["test-unseen-ood"]} & {u.extra["voice"] for u in train}
    assert "| test-unseen-ood | greedy |" in (out / "RESULTS.md").read_text()
    assert "| test-unseen-short-8k | greedy |" in (out / "RESULTS.md").read_text()
    assert (out / "train" / "tokenizer.pt").exists() and (out / "train" / "model.pt").exists()
    assert "| test-unseen | greedy |" in (out / "RESULTS.md").read_text()
    assert f"| test-unseen | beam {LM_DEFAULTS['ngram']['beam_size']} + n-gram |" in (out / "RESULTS.md").read_text()
    assert "a" in load_ngram(out / "lm" / "ngram.arpa.gz").words
    # telephone copy of test-unseen: 8 kHz mu-law files, same texts, scored too
    narrow = read_manifest(out / "test-unseen-8k.jsonl")
    assert [u.text for u in narrow] == [u.text for u in test]
    info = sf.info(narrow[0].audio_filepath)
    assert (info.samplerate, info.subtype) == (8000, "ULAW")
    assert "| test-unseen-8k | greedy |" in (out / "RESULTS.md").read_text()
    assert (out / "export" / "model.pt").exists()

    capsys.readouterr()
    recipe.main(args)
    err = capsys.readouterr().err
    assert all(f"stage {n} (" in err for n in range(1, 9)) and err.count("done, skipped") == 8

    wavs = sorted((out / "wav").glob("*.wav"))
    stamps = {w: w.stat().st_mtime_ns for w in wavs}
    wavs[0].unlink()
    (out / ".done" / "2").unlink()
    recipe.main(["--stage", "2", "--stop-stage", "2"] + args)   # before args: --train-args takes the rest
    assert wavs[0].exists()
    assert all(w.stat().st_mtime_ns == stamps[w] for w in wavs[1:])

    # --synth-splits dev,test: only their speech (enough to score a model on a fresh machine)
    train_wav, test_wav = out / "wav" / "train-000000.wav", out / "wav" / "test-000000.wav"
    train_wav.unlink(), test_wav.unlink()
    recipe.main(["--stage", "2", "--stop-stage", "2", "--force", "--synth-splits", "dev,test"] + args)
    assert test_wav.exists() and not train_wav.exists()

    # --extra-hours: more training speech from LM-only sentences; train, dev and test stay as they were
    recipe.main(["--stage", "1", "--stop-stage", "3", "--force", "--extra-hours", "0.005"] + args)
    same = lambda utts: [(u.text, u.extra["voice"], u.duration) for u in utts]  # noqa: E731
    train2 = read_manifest(out / "train.jsonl")
    extra = [u for u in train2 if u.extra["id"].startswith("extra-")]
    assert same([u for u in train2 if u not in extra]) == same(train) and len(extra) == 5
    assert all(u.extra["voice"].startswith("espeak:") for u in extra)
    assert not {u.text for u in extra} & {u.text for u in train + dev + test}
    assert same(read_manifest(out / "dev.jsonl")) == same(dev)
    assert same(read_manifest(out / "test-unseen.jsonl")) == same(test)
    # --extra-from-hours: leave out the first extra sentences (2 of 5 here), the others keep their voices
    for w in (out / "wav").glob("extra-*.wav"):
        w.unlink()
    recipe.main(["--stage", "2", "--stop-stage", "3", "--force", "--extra-hours", "0.005",
                 "--extra-from-hours", "0.002"] + args)
    extra3 = [u for u in read_manifest(out / "train.jsonl") if u.extra["id"].startswith("extra-")]
    assert same(extra3) == same(extra[2:])


def test_offline_en_real_short(tmp_path, monkeypatch, capsys):
    """dev-real-short: card names read from cards.transcription, other texts from the table, headerless
    16 kHz PCM written out as WAV; a missing source folder skips the split with a message."""
    recipe = load_recipe("offline_en")
    src = tmp_path / "src"
    (src / "cards").mkdir(parents=True)
    pcm = (np.sin(np.arange(8000) / 5) * 8000).astype("<i2")
    pcm.tofile(src / "go.raw")
    sf.write(src / "cards" / "001.wav", pcm / 32768, 16000)
    (src / "cards" / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n")
    monkeypatch.setattr(recipe, "PS_DATA", src)
    monkeypatch.setattr(recipe, "REAL_SHORT", {"cards-001": (src / "cards" / "001.wav", None),
                                               "go": (src / "go.raw", "go forward")})
    out = tmp_path / "exp"
    recipe.real_short(out)
    utts = read_manifest(out / "dev-real-short.jsonl")
    assert [u.text for u in utts] == ["ten of clubs", "go forward"]
    x, sr = sf.read(utts[1].audio_filepath, dtype="int16")
    assert sr == 16000 and np.array_equal(x, pcm) and abs(utts[1].duration - 0.5) < 1e-6

    monkeypatch.setattr(recipe, "REAL_SHORT", {"gone": (tmp_path / "nowhere" / "x.wav", "x")})
    recipe.real_short(tmp_path / "exp2")
    assert "dev-real-short: skipped" in capsys.readouterr().err
    assert not (tmp_path / "exp2" / "dev-real-short.jsonl").exists()


def test_offline_en_real_phone(tmp_path, monkeypatch, capsys):
    """test-real-8k: Asterisk prompts with exactly known words are kept (texts as written, scoring
    normalises them), the rest (digits, spelled letters, sound descriptions, keypad symbols, no
    recording) left out; missing packages skip the split with a message."""
    import gzip

    recipe = load_recipe("offline_en")
    sounds = tmp_path / "sounds"
    (sounds / "digits").mkdir(parents=True)
    for name in ("activated", "digits/day-0", "letters/a", "press-1", "beep", "vm-intro"):
        (sounds / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(sounds / f"{name}.wav", np.zeros(4000, dtype="float32"), 8000)
    text = tmp_path / "core-sounds-en.txt.gz"
    text.write_bytes(gzip.compress(b"; Core Asterisk Sounds in English\n\nactivated: Activated.\n"
                                   b"digits/day-0: Sunday\nletters/a: a\npress-1: Press 1.\n"
                                   b"beep: [this is a simple beep tone]\nvm-intro: Hang up. (tone plays)\n"
                                   b"no-recording: Goodbye.\nstar: Press star *\n"))
    monkeypatch.setattr(recipe, "ASTERISK_SOUNDS", sounds)
    monkeypatch.setattr(recipe, "ASTERISK_TEXT", text)
    out = tmp_path / "exp"
    recipe.real_phone(out)
    utts = read_manifest(out / "test-real-8k.jsonl")
    assert [(u.extra["id"], u.text) for u in utts] == [("asterisk-activated", "Activated."),
                                                       ("asterisk-digits-day-0", "Sunday")]
    assert utts[0].duration == 0.5 and sf.info(utts[0].audio_filepath).samplerate == 8000

    monkeypatch.setattr(recipe, "ASTERISK_SOUNDS", tmp_path / "nowhere")
    recipe.real_phone(tmp_path / "exp2")
    assert "test-real-8k: skipped" in capsys.readouterr().err
    assert not (tmp_path / "exp2" / "test-real-8k.jsonl").exists()


def test_offline_en_compare(tiny_model, tone_corpus, tmp_path, capsys):
    """compare.py: the acoustic model run once per utterance gives what asr.evaluate gives, greedy and
    with the n-gram, per split, with the real splits' word errors added up."""
    load_recipe("offline_en")
    import compare

    from asr.inference import evaluate, load_model
    from asr.ngram import build_ngram
    out = tmp_path / "exp"
    (out / "lm").mkdir(parents=True)
    for split in ("dev", "dev-real"):
        write_manifest(out / f"{split}.jsonl", read_manifest(tone_corpus / "valid.jsonl"))
    text = tmp_path / "train.txt"
    text.write_text("\n".join(u.text for u in read_manifest(tone_corpus / "train.jsonl")) + "\n")
    build_ngram([text], out / "lm" / "ngram.arpa.gz", order=2)
    compare.main(["--out", str(out), "--models", str(tiny_model), "--name", "t", "--jobs", "1"])
    table = (out / "compare" / "t.md").read_text()
    lm = out / "lm" / "ngram.arpa.gz"
    for dec, kw in (("greedy", {}), ("n-gram", {"lm": lm})):
        r = evaluate(out / "dev.jsonl", load_model(tiny_model, device="cpu", threads=1, **kw), progress=False).result
        assert f"| dev | {dec} | {100 * r.wer:.2f} ({r.errors}/{r.n_ref}) |" in table
        assert f"| real word errors (dev-real) | {dec} | {r.errors} |" in table
    assert (out / "compare" / "t" / Path(tiny_model).parent.name / "n-gram" / "errs-dev-real.txt").exists()

    # two models: a sign test of the second against the first, here the same weights (all ties)
    twin = tmp_path / "twin" / "model.pt"
    twin.parent.mkdir()
    shutil.copy(tiny_model, twin)
    compare.main(["--out", str(out), "--models", str(tiny_model), str(twin), "--name", "two", "--jobs", "1",
                  "--splits", "dev"])
    assert "| dev | greedy | 0 / 0, p = 1.000 |" in (out / "compare" / "two.md").read_text()
    reports = out / "compare" / "two"
    compare.main(["--sign-test", *(str(reports / d / "greedy" / "errs-dev.txt") for d in (Path(tiny_model).parent.name, "twin"))])
    assert "0 better, 0 worse, sign test p = 1.000" in capsys.readouterr().out
