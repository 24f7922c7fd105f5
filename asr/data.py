"""Training data: manifest utterances -> (augmented) log-mel features + token ids, batched by seconds.

`DurationBatchSampler` groups utterances of similar length into batches of at most
`max_seconds` of audio; its order depends only on (seed, epoch), and each DDP rank takes every
world_size-th batch, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

from .audio import AudioError, audio_duration, load_audio
from .augment import AugmentConfig, augment
from .features import make_logmel
from .manifest import Utterance
from .text import normalize_text
from .tokenizer import Tokenizer


def load_utterance(utt: Utterance) -> torch.Tensor:
    """The utterance's audio (a segment of the file when the entry has an ``offset``)."""
    if "offset" in utt.extra:
        return load_audio(utt.audio_filepath, offset=float(utt.extra["offset"]), duration=utt.duration)
    return load_audio(utt.audio_filepath)


@dataclass
class Example:
    feats: torch.Tensor    # (T, n_mels), or (T', d_model) for a cached encoder's output
    tokens: list[int]
    utt: Utterance
    encoded: bool = False  # feats are the (frozen) encoder's output: see asr/encoder_cache.py


class SpeechDataset(Dataset):
    """Loads audio, applies waveform augmentation (if given), computes log-mel features.

    `__getitem__` takes ``(index, epoch, augment_prob)`` (see `DurationBatchSampler`), so
    augmentation is a pure function of the seed, the epoch and the utterance, which keeps resumed
    runs identical to uninterrupted ones.
    """

    def __init__(self, utts: list[Utterance], tokenizer: Tokenizer, augment_cfg: AugmentConfig | None = None,
                 seed: int = 0, frontend: str = "fbank"):
        self.utts, self.tokenizer = utts, tokenizer
        self.augment_cfg, self.seed = augment_cfg, seed
        self.logmel = make_logmel(frontend)
        self.tokens = [tokenizer.encode(normalize_text(u.text)) for u in utts]

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, key) -> Example | None:
        index, epoch, augment_prob = key if isinstance(key, tuple) else (key, 0, 1.0)
        utt = self.utts[index]
        rng = random.Random(f"{self.seed}-{epoch}-{index}")
        try:
            wav = load_utterance(utt)
        except AudioError:
            return None
        if self.augment_cfg is not None and rng.random() < augment_prob:
            wav = augment(wav, self.augment_cfg, rng)
        feats = self.logmel(wav)
        return Example(feats, self.tokens[index], utt)


def collate(examples: list[Example | None]) -> dict:
    """Pad examples into a batch (unreadable files and empty transcripts are left out)."""
    examples = [e for e in examples if e is not None and len(e.tokens) > 0]
    feats = [e.feats for e in examples]
    targets = [torch.tensor(e.tokens, dtype=torch.long) for e in examples]
    return {
        "feats": torch.nn.utils.rnn.pad_sequence(feats, batch_first=True) if feats else torch.zeros(0, 1, 80),
        "lengths": torch.tensor([f.shape[0] for f in feats], dtype=torch.long),
        "targets": torch.nn.utils.rnn.pad_sequence(targets, batch_first=True) if targets else torch.zeros(0, 1, dtype=torch.long),
        "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
        "texts": [normalize_text(e.utt.text) for e in examples],
        "ids": [e.utt.id for e in examples],
        "encoded": bool(examples) and examples[0].encoded,
    }


def validate_utterances(utts: list[Utterance], tokenizer: Tokenizer, check_duration: bool = True) -> list[str]:
    """Problems that would spoil training, one ``manifest:line: reason`` string per bad utterance:
    missing or unreadable audio, a duration that disagrees with the file, a transcript with
    nothing the tokenizer can spell."""
    problems = []
    for utt in utts:
        where = utt.source or utt.audio_filepath
        text = normalize_text(utt.text)
        try:
            real = audio_duration(utt.audio_filepath)
        except AudioError as e:
            problems.append(f"{where}: {e}")
            continue
        if check_duration and utt.duration is not None and abs(real - utt.duration) > 0.1 + 0.05 * real:
            problems.append(f"{where}: duration {utt.duration:.2f} s but the audio lasts {real:.2f} s")
        elif not text:
            problems.append(f"{where}: transcript {utt.text[:40]!r} has no characters the tokenizer knows")
        elif 1 in tokenizer.encode(text):   # id 1 is <unk>
            bad = sorted({c for c in text if 1 in tokenizer.encode(c)} - {" "})
            problems.append(f"{where}: characters outside the tokenizer: {''.join(bad) or text[:40]!r}")
    return problems


class DurationBatchSampler(Sampler):
    """Batches of at most `max_seconds` of audio, drawn from duration buckets.

    Utterances are sorted by duration, cut into batches, and the batches shuffled by (seed, epoch).
    With `rank`/`world_size` each process gets an equal share (the tail that does not divide
    evenly is dropped so that DDP ranks step together). During the first `sortagrad_epochs`
    epochs batches go from short to long (a length curriculum). Yields lists of
    ``(index, epoch, augment_prob)``; augment_prob ramps from 0 to 1 over `augment_ramp_batches`
    batches, so augmentation comes in after the model has started to align.
    """

    def __init__(self, durations: list[float], max_seconds: float, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, max_duration: float | None = None,
                 sortagrad_epochs: int = 0, augment_ramp_batches: int = 0):
        self.durations, self.max_seconds = durations, max_seconds
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.max_duration = max_duration
        self.sortagrad_epochs, self.augment_ramp_batches = sortagrad_epochs, augment_ramp_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        idx = [i for i, d in enumerate(self.durations) if self.max_duration is None or d <= self.max_duration]
        # Jitter the sort key so buckets differ from epoch to epoch.
        idx.sort(key=lambda i: self.durations[i] * (1 + 0.1 * rng.random()) if self.shuffle else self.durations[i])
        batches, cur, cur_max = [], [], 0.0
        for i in idx:
            d = self.durations[i]
            if cur and max(cur_max, d) * (len(cur) + 1) > self.max_seconds:
                batches.append(cur)
                cur, cur_max = [], 0.0
            cur.append(i)
            cur_max = max(cur_max, d)
        if cur:
            batches.append(cur)
        if self.shuffle and self.epoch >= self.sortagrad_epochs:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank:usable:self.world_size]

    def __iter__(self):
        batches = self.batches()
        for n, b in enumerate(batches):
            done = self.epoch * len(batches) + n
            p = min(1.0, done / self.augment_ramp_batches) if self.augment_ramp_batches else 1.0
            yield [(i, self.epoch, p) for i in b]

    def __len__(self) -> int:
        return len(self.batches())
