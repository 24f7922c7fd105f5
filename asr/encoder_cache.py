"""Cached output of a frozen encoder, so that training runs only the adapter and the head (and the
encoder's top blocks, when `TrainConfig.encoder_trainable_top` lets them learn: the cache then
holds the output of the fixed blocks below them).

With the pretrained encoder frozen, its forward pass is about half of a training step
(`benchmarks/profile_step.py`). `build_cache` runs it once over each copy of the training set
(`copies` waveform-augmented copies, plus a clean one when augmentation ramps in), and
`EncodedDataset` serves those outputs as the batch's features. The price: a copy's waveform
augmentation is fixed (epoch e reads augmented copy (e + index) % copies); SpecAugment still masks
the cached output afresh at every step.

A cache lives in ``DIR/<fingerprint>/`` (the fingerprint covers the encoder's weights, the
utterances, the augmentation and the seed, so a changed input never reads stale outputs). Each
process writes its own part per copy: ``<copy>-r<rank>-of<world>.npy`` (float16 frames of every
world-th length-sorted batch, concatenated) and then ``.json`` (utterance index -> [offset,
frames]). Both are written atomically and a part with its ``.json`` is never computed again: an
interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .data import DurationBatchSampler, Example, SpeechDataset, collate
from .io import atomic_write


def copy_names(copies: int, clean: bool) -> list[str]:
    return (["clean"] if clean else []) + [f"aug{i}" for i in range(copies)]


def fingerprint(model, dataset: SpeechDataset) -> str:
    h = hashlib.sha1()
    enc = model.encoder
    top = {id(t) for m in enc.top_modules() for t in [*m.parameters(), *m.buffers()]}
    for name, t in sorted([*enc.named_parameters(), *enc.named_buffers()], key=lambda kv: kv[0]):
        if id(t) in top:         # trained as it goes: not part of what the cache holds
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().float().numpy().tobytes())
    if enc.trainable_top:
        h.update(f"bottom of {len(enc.blocks) - enc.trainable_top} blocks".encode())
    h.update(model.cmvn.mean.cpu().numpy().tobytes() + model.cmvn.std.cpu().numpy().tobytes())
    aug = asdict(dataset.augment_cfg) if dataset.augment_cfg is not None else None
    h.update(json.dumps([aug, dataset.seed, [(u.audio_filepath, u.duration, u.extra.get("offset"))
                                             for u in dataset.utts]], default=str).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def build_cache(model, dataset: SpeechDataset, folder: Path, names: list[str], rank: int = 0, world_size: int = 1,
                batch_seconds: float = 30.0, device: torch.device = torch.device("cpu"), progress: bool = True) -> None:
    """Write this process's part of every copy in `names` (skipping parts already complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    # Every utterance, in length-sorted batches; each process takes every world_size-th batch.
    durations = [u.duration or 0.0 for u in dataset.utts]
    batches = DurationBatchSampler(durations, batch_seconds, shuffle=False).batches()[rank::world_size]
    was_training = model.training
    model.eval()
    for name in names:
        part = folder / f"{name}-r{rank}-of{world_size}"
        if part.with_suffix(".json").exists():
            continue
        prob = 0.0 if name == "clean" else 1.0
        epoch = 0 if name == "clean" else int(name[3:])
        arrays, index, offset = [], {}, 0
        for batch in tqdm(batches, desc=f"encoder cache {name}", unit="batch", disable=not progress,
                          dynamic_ncols=True):
            items = [(i, dataset[(i, epoch, prob)]) for i in batch]
            items = [(i, e) for i, e in items if e is not None]
            if not items:
                continue
            b = collate([e for _, e in items])
            x, lengths = model.encoder.bottom(model.cmvn(b["feats"].to(device)), b["lengths"].to(device))
            x = x.half().cpu().numpy()
            for j, (i, _) in enumerate(items):
                n = int(lengths[j])
                arrays.append(x[j, :n])
                index[i] = [offset, n]
                offset += n
        with atomic_write(part.with_suffix(".npy"), "wb") as f:
            np.save(f, np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float16))
        with atomic_write(part.with_suffix(".json")) as f:
            json.dump({"index": index}, f)
    model.train(was_training)


class EncodedDataset(Dataset):
    """`SpeechDataset`'s utterances as cached encoder output (``Example.encoded`` is True).

    Keys are ``(index, epoch, augment_prob)`` as from `DurationBatchSampler`: with a clean copy,
    an utterance is read augmented with probability augment_prob (else clean).
    """

    def __init__(self, dataset: SpeechDataset, folder: Path, names: list[str]):
        self.dataset = dataset
        self.augmented = [n for n in names if n != "clean"]
        self.where: dict[str, dict[int, tuple[np.ndarray, int, int]]] = {n: {} for n in names}
        for name in names:
            parts = sorted(folder.glob(f"{name}-r*-of*.json"))
            if not parts:
                raise FileNotFoundError(f"{folder}: no encoder cache for copy {name!r}")
            for meta in parts:
                arr = np.load(meta.with_suffix(".npy"), mmap_mode="r")
                for i, (off, n) in json.loads(meta.read_text())["index"].items():
                    self.where[name][int(i)] = (arr, off, n)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> Example | None:
        index, epoch, augment_prob = key if isinstance(key, tuple) else (key, 0, 1.0)
        rng = random.Random(f"{self.dataset.seed}-{epoch}-{index}")
        clean = "clean" in self.where and (not self.augmented or rng.random() >= augment_prob)
        name = "clean" if clean else self.augmented[(epoch + index) % len(self.augmented)]
        found = self.where[name].get(index)
        if found is None:      # unreadable audio when the cache was built
            return None
        arr, off, n = found
        feats = torch.from_numpy(np.asarray(arr[off:off + n], dtype=np.float32))
        return Example(feats, self.dataset.tokens[index], self.dataset.utts[index], encoded=True)


def cached_dataset(model, dataset: SpeechDataset, root: Path, copies: int, clean: bool, rank, batch_seconds: float,
                   device: torch.device) -> EncodedDataset:
    """Build (every process its share, then wait for the others) and open the cache for `dataset`."""
    import torch.distributed as dist

    folder = root / fingerprint(model, dataset)
    names = copy_names(copies if dataset.augment_cfg is not None else 0, clean or dataset.augment_cfg is None)
    start = time.time()
    build_cache(model, dataset, folder, names, rank.rank, rank.world_size, batch_seconds, device, progress=rank.main)
    if rank.world_size > 1:
        dist.barrier()
    if rank.main:
        print(f"encoder cache: {', '.join(names)} in {folder} ({(time.time() - start) / 60:.1f} min)", file=sys.stderr)
    return EncodedDataset(dataset, folder, names)
