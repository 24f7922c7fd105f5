"""Where a training step of a frozen-encoder model spends its time, 1 thread.

    python benchmarks/profile_step.py --model exp/offline_en/train-whisper/model.pt \
        --manifest exp/offline_en/train.jsonl [--batches 12]

Times, over the first --batches batches (30 s of audio each, epoch 1 order, augmentation on):
loading + augmentation + features, the frozen encoder's forward, and the adapter + head forward,
backward and optimizer step. The encoder share is what caching its output would save.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from asr.augment import AugmentConfig
from asr.checkpoint import load_checkpoint, model_from_checkpoint
from asr.data import DurationBatchSampler, SpeechDataset, collate
from asr.manifest import read_manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a checkpoint with an adapter (whisper_tiny_adapter)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--batches", type=int, default=12)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, tok = model_from_checkpoint(load_checkpoint(args.model))
    model.float().freeze_encoder()
    model.train()
    utts = read_manifest(args.manifest, require_duration=True)
    data = SpeechDataset(utts, tok, AugmentConfig(), frontend=model.config.frontend)
    sampler = DurationBatchSampler([u.duration for u in utts], 30.0, seed=0)
    sampler.set_epoch(1)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    times, audio = {"data": 0.0, "encoder (frozen, forward)": 0.0, "adapter + head (fwd, bwd, step)": 0.0}, 0.0
    for keys in list(sampler)[:args.batches]:
        t = time.perf_counter()
        batch = collate([data[k] for k in keys])
        times["data"] += time.perf_counter() - t
        audio += sum(utts[k[0]].duration for k in keys)
        t = time.perf_counter()
        with torch.no_grad():
            h, lengths = model.encoder(model.cmvn(batch["feats"]), batch["lengths"])
        times["encoder (frozen, forward)"] += time.perf_counter() - t
        t = time.perf_counter()
        y, lengths = model.adapter(h, lengths)
        lp = model.head_logits(y).log_softmax(-1)
        loss = F.ctc_loss(lp.transpose(0, 1), batch["targets"], lengths, batch["target_lengths"],
                          reduction="sum", zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times["adapter + head (fwd, bwd, step)"] += time.perf_counter() - t
    total = sum(times.values())
    print(f"| part | seconds for {audio:.0f} s of audio | share |\n|---|---|---|")
    for name, sec in times.items():
        print(f"| {name} | {sec:.1f} | {100 * sec / total:.0f}% |")


if __name__ == "__main__":
    main()
