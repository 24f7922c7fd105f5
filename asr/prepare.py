"""Corpus layouts on disk -> JSONL manifests (and manifests -> Kaldi data dirs).

    kaldi_to_manifest("data/train", "train.jsonl")         # wav.scp + text [+ segments, utt2spk]
    librispeech_to_manifest("LibriSpeech/dev-clean", "dev.jsonl")
    commonvoice_to_manifest("cv-corpus/en/test.tsv", "test.jsonl")
    folder_to_manifest("recordings/", "rec.jsonl")          # a.wav + a.txt pairs
    manifest_to_kaldi("train.jsonl", "data/train")

Each returns the number of utterances written; problems raise `PrepareError` naming file and line.
Segmented entries carry NeMo's ``offset`` key (seconds into the file).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .audio import AudioError, audio_duration, audio_files
from .io import atomic_write
from .manifest import Utterance, read_manifest, write_manifest


class PrepareError(ValueError):
    """Input that cannot be converted; the message names the file (and line)."""


def _table(path: Path, required: bool = True) -> list[tuple[int, str, str]]:
    """Kaldi-style ``key rest`` lines as (line number, key, rest)."""
    if not path.exists():
        if required:
            raise PrepareError(f"{path}: missing")
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            key, _, rest = line.strip().partition(" ")
            rows.append((n, key, rest.strip()))
    return rows


def _duration(path: str, where: str) -> float:
    try:
        return audio_duration(path)
    except AudioError as e:
        raise PrepareError(f"{where}: {e}") from None


def kaldi_to_manifest(data_dir: str | Path, out: str | Path) -> int:
    """A Kaldi data dir (``wav.scp`` with plain paths, ``text``, optional ``segments`` and
    ``utt2spk``) -> manifest. Piped ``wav.scp`` entries (``cmd |``) are refused."""
    d = Path(data_dir)
    wavs = {}
    for n, key, rest in _table(d / "wav.scp"):
        if rest.endswith("|") or rest.startswith("|"):
            raise PrepareError(f"{d / 'wav.scp'}:{n}: piped command entries are not supported "
                               f"(write the audio to files first): {rest[:60]}")
        path = Path(rest)
        wavs[key] = str(path if path.is_absolute() else (d / path).resolve() if (d / path).exists() else path.resolve())
    texts = {key: (n, rest) for n, key, rest in _table(d / "text")}
    spk = {key: rest for _, key, rest in _table(d / "utt2spk", required=False)}
    segments = _table(d / "segments", required=False)
    utts = []
    if segments:
        for n, utt, rest in segments:
            parts = rest.split()
            if len(parts) != 3 or parts[0] not in wavs:
                raise PrepareError(f"{d / 'segments'}:{n}: expected 'utt recording start end' with a known recording")
            start, end = float(parts[1]), float(parts[2])
            if utt not in texts:
                raise PrepareError(f"{d / 'segments'}:{n}: utterance {utt} has no line in text")
            extra = {"id": utt, "offset": start}
            if utt in spk:
                extra["speaker"] = spk[utt]
            utts.append(Utterance(wavs[parts[0]], texts[utt][1], end - start, extra))
    else:
        for utt, path in wavs.items():
            if utt not in texts:
                raise PrepareError(f"{d / 'text'}: no transcript for {utt}")
            extra = {"id": utt}
            if utt in spk:
                extra["speaker"] = spk[utt]
            utts.append(Utterance(path, texts[utt][1], _duration(path, f"{d / 'wav.scp'} ({utt})"), extra))
    write_manifest(out, utts)
    return len(utts)


def manifest_to_kaldi(manifest: str | Path, data_dir: str | Path) -> int:
    """Manifest -> Kaldi data dir (wav.scp, text, utt2spk, spk2utt, and segments when entries
    have offsets). Keys are sorted as Kaldi requires; spaces in ids become underscores."""
    utts = read_manifest(manifest)
    d = Path(data_dir)
    rows = []
    for u in utts:
        uid = u.id.replace(" ", "_")
        spk = str(u.extra.get("speaker", uid)).replace(" ", "_")
        # Kaldi wants utterance ids to start with the speaker id so both sort the same way.
        if not uid.startswith(spk):
            uid = f"{spk}-{uid}"
        rows.append((uid, spk, u))
    rows.sort(key=lambda r: r[0])
    segmented = any("offset" in u.extra for _, _, u in rows)
    recordings = {}
    with atomic_write(d / "text") as text, atomic_write(d / "utt2spk") as u2s:
        for uid, spk, u in rows:
            text.write(f"{uid} {u.text}\n")
            u2s.write(f"{uid} {spk}\n")
            recordings.setdefault(u.audio_filepath, f"rec{len(recordings):06d}" if segmented else uid)
    with atomic_write(d / "wav.scp") as scp:
        for path, rec in sorted(recordings.items(), key=lambda kv: kv[1]):
            scp.write(f"{rec} {path}\n")
    if segmented:
        with atomic_write(d / "segments") as seg:
            for uid, _, u in rows:
                start = float(u.extra.get("offset", 0.0))
                seg.write(f"{uid} {recordings[u.audio_filepath]} {start:.3f} {start + (u.duration or 0):.3f}\n")
    spk2utt: dict[str, list[str]] = {}
    for uid, spk, _ in rows:
        spk2utt.setdefault(spk, []).append(uid)
    with atomic_write(d / "spk2utt") as f:
        for spk in sorted(spk2utt):
            f.write(f"{spk} {' '.join(spk2utt[spk])}\n")
    return len(rows)


def librispeech_to_manifest(root: str | Path, out: str | Path) -> int:
    """LibriSpeech layout: ``<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` lines
    ``ID WORDS`` next to ``ID.flac``."""
    root = Path(root)
    utts = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for n, uid, text in _table(trans):
            audio = trans.parent / f"{uid}.flac"
            where = f"{trans}:{n}"
            if not audio.exists():
                raise PrepareError(f"{where}: {audio.name} is missing")
            utts.append(Utterance(str(audio), text.lower(), _duration(str(audio), where),
                                  {"id": uid, "speaker": uid.split("-")[0]}))
    if not utts:
        raise PrepareError(f"{root}: no *.trans.txt files (is this a LibriSpeech folder?)")
    write_manifest(out, utts)
    return len(utts)


def commonvoice_to_manifest(tsv: str | Path, out: str | Path, clips: str | Path | None = None) -> int:
    """Common Voice: a split TSV (``path``, ``sentence``, ``client_id`` columns) with audio in
    ``clips/`` beside it (or `clips`)."""
    tsv = Path(tsv)
    clips = Path(clips) if clips else tsv.parent / "clips"
    utts = []
    with tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise PrepareError(f"{tsv}: missing columns {sorted(missing)}")
        for n, row in enumerate(reader, 2):
            audio = clips / row["path"]
            where = f"{tsv}:{n}"
            if not audio.exists():
                raise PrepareError(f"{where}: {audio} is missing")
            extra = {"id": Path(row["path"]).stem}
            if row.get("client_id"):
                extra["speaker"] = row["client_id"]
            utts.append(Utterance(str(audio), row["sentence"], _duration(str(audio), where), extra))
    write_manifest(out, utts)
    return len(utts)


def folder_to_manifest(folder: str | Path, out: str | Path) -> int:
    """Audio files with same-named ``.txt`` transcripts (searched recursively)."""
    folder = Path(folder)
    utts = []
    for audio in audio_files(folder):
        txt = audio.with_suffix(".txt")
        if not txt.exists():
            continue
        utts.append(Utterance(str(audio), " ".join(txt.read_text(encoding="utf-8").split()),
                              _duration(str(audio), str(audio)), {"id": audio.stem}))
    if not utts:
        raise PrepareError(f"{folder}: no audio files with a same-named .txt transcript")
    write_manifest(out, utts)
    return len(utts)


PREPARERS = {"kaldi": kaldi_to_manifest, "librispeech": librispeech_to_manifest,
             "commonvoice": commonvoice_to_manifest, "folder": folder_to_manifest}
