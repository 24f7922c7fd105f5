import subprocess
import sys

import pytest
import torch

import asr
import asr.trainer
from asr.checkpoint import load_checkpoint, model_from_checkpoint, step_checkpoints
from asr.data import DurationBatchSampler
from asr.distributed import Dist
from asr.model import replace_head
from asr.tokenizer import Tokenizer, train_tokenizer
from asr.trainer import TrainConfig, lr_at, train, train_sampler

from conftest import tiny_train_config


def test_overfit_reaches_zero_wer(tiny_model, tone_corpus):
    rec = asr.load_model(tiny_model)
    ev = asr.evaluate(tone_corpus / "train.jsonl", rec, progress=False)
    assert ev.result.wer == 0.0, ev.summary()


def test_length_curriculum_only_from_scratch():
    """The first epoch goes from short to long utterances, except in a run from a trained model."""
    durations = [0.5 + (7 * i % 40) / 4 for i in range(40)]

    def batches(**kw):
        sampler = train_sampler(TrainConfig(batch_seconds=12.0, sortagrad_epochs=1, **kw), durations, Dist())
        return [sorted(i for i, _, _ in b) for b in sampler]

    scratch, tuned = batches(), batches(init_from="trained.pt")
    longest = [max(durations[i] for i in b) for b in scratch]
    assert len(scratch) > 5 and longest[0] == min(longest) and longest[-1] == max(longest)
    assert tuned != scratch and sorted(tuned) == sorted(scratch)   # the same batches, shuffled


def test_training_writes_logs_and_averaged_model(tiny_model):
    exp = tiny_model.parent
    assert (exp / "train.csv").read_text().startswith("step,epoch,loss")
    assert (exp / "config.yaml").exists()
    final = load_checkpoint(tiny_model)
    assert len(final["averaged"]) >= 2 and "optimizer" not in final
    losses = [float(r.split(",")[2]) for r in (exp / "train.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.2 * losses[0]


def test_resume_matches_uninterrupted_run(tone_corpus, tmp_path, monkeypatch):
    kw = dict(max_steps=12, checkpoint_every=4, keep_last=10, lr=3e-3, augment=True, specaugment=True,
              augment_ramp_steps=4, model_overrides={"dropout": 0.1})
    torch.manual_seed(0)
    full = train(tiny_train_config(tone_corpus, tmp_path / "full", **kw))
    # The same run dies during step 10; it resumes from checkpoint-8.
    calls = {"n": 0}
    real_loss = asr.trainer.compute_loss

    def dying_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt("killed")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(asr.trainer, "compute_loss", dying_loss)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(tone_corpus, tmp_path / "cut", **kw))
    monkeypatch.setattr(asr.trainer, "compute_loss", real_loss)
    # every 4 steps, plus the end of the first epoch (7 batches)
    assert [p.name for p in step_checkpoints(tmp_path / "cut")] == ["checkpoint-4.pt", "checkpoint-7.pt",
                                                                     "checkpoint-8.pt"]
    torch.manual_seed(123)   # a different global seed must not matter: RNG state comes from the checkpoint
    resumed = train(tiny_train_config(tone_corpus, tmp_path / "cut", **kw))
    a = load_checkpoint(tmp_path / "full" / "checkpoint-12.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint-12.pt")["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert full.exists() and resumed.exists()


def test_lr_schedule_warmup_and_decay():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    assert lr_at(0, cfg, 100) == pytest.approx(1e-4)
    assert lr_at(9, cfg, 100) == pytest.approx(1e-3)
    assert lr_at(100, cfg, 100) == pytest.approx(1e-4)
    assert lr_at(50, cfg, 100) < lr_at(20, cfg, 100)


def test_batches_sized_by_seconds_and_split_across_ranks():
    durations = [1.0 + (i % 7) for i in range(100)]
    s = DurationBatchSampler(durations, max_seconds=20.0, seed=3)
    batches = s.batches()
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert all(max(durations[i] for i in b) * len(b) <= 20.0 for b in batches)
    assert s.batches() == batches                          # same epoch, same order
    s.set_epoch(1)
    assert s.batches() != batches                          # new epoch, new order
    ranks = [DurationBatchSampler(durations, 20.0, seed=3, rank=r, world_size=2).batches() for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])
    assert not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))


def test_ddp_two_cpu_processes(tone_corpus, tmp_path):
    exp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "asr.cli", "train", str(tone_corpus / "train.jsonl"), "--valid", str(tone_corpus / "valid.jsonl"),
           "--exp-dir", str(exp), "--preset", "tiny", "--tokenizer", "char", "--max-steps", "6",
           "--checkpoint-every", "3", "--batch-seconds", "6", "--warmup-steps", "2", "--threads", "1",
           "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = load_checkpoint(exp / "checkpoint-6.pt")
    assert ckpt["train_state"]["step"] == 6
    assert len(ckpt["rng"]) == 2                     # one RNG state per rank
    assert (exp / "model.pt").exists()
    assert "2 process(es)" in out.stderr
    assert "2 ranks in sync" in out.stderr


def test_frozen_encoder_and_encoder_lr_scale(tone_corpus, tmp_path):
    """freeze_encoder: only what follows the encoder learns, and the encoder's dropout stays off;
    encoder_lr_scale sets the encoder's share of the learning rate."""
    torch.manual_seed(0)
    cfg = tiny_train_config(tone_corpus, tmp_path / "frozen", max_steps=4, checkpoint_every=4,
                            freeze_encoder=True, model_overrides={"dropout": 0.1})
    train(cfg)
    trained = load_checkpoint(tmp_path / "frozen" / "checkpoint-4.pt")["model"]
    torch.manual_seed(0)
    vocab = type("T", (), {"vocab_size": trained["head.weight"].shape[0]})()
    init = asr.trainer._build_model(cfg, vocab)
    assert all(torch.equal(v, init.state_dict()[k]) for k, v in trained.items() if k.startswith("encoder."))
    assert not torch.equal(trained["head.weight"], init.state_dict()["head.weight"])
    init.train()
    assert not init.encoder.training and init.head.training

    train(tiny_train_config(tone_corpus, tmp_path / "scaled", max_steps=4, checkpoint_every=4, encoder_lr_scale=0.5))
    groups = {g["name"]: g for g in load_checkpoint(tmp_path / "scaled" / "checkpoint-4.pt")["optimizer"]["param_groups"]}
    assert groups["encoder"]["lr"] == pytest.approx(0.5 * groups["rest"]["lr"]) and groups["rest"]["lr"] > 0


def test_encoder_anchor_pulls_the_encoder_back(tone_corpus, tmp_path):
    """L2-SP (encoder_anchor, encoder_anchor_decay): training on from a model, its encoder ends
    nearer the anchor's than without the pull; the pull needs an anchor."""
    torch.manual_seed(0)
    start = train(tiny_train_config(tone_corpus, tmp_path / "start", max_steps=4, checkpoint_every=4))
    ref = load_checkpoint(start)["model"]

    def distance(decay):
        torch.manual_seed(0)
        path = train(tiny_train_config(tone_corpus, tmp_path / f"decay-{decay}", max_steps=6, checkpoint_every=6,
                                       warmup_steps=1, init_from=str(start), encoder_anchor=str(start),
                                       encoder_anchor_decay=decay))
        got = load_checkpoint(path)["model"]
        return sum(float((got[k] - v).norm()) for k, v in ref.items() if k.startswith("encoder."))

    free, pulled = distance(0.0), distance(100.0)
    assert 0 < pulled < 0.5 * free
    with pytest.raises(ValueError, match="needs encoder_anchor"):
        train(tiny_train_config(tone_corpus, tmp_path / "no-anchor", max_steps=2, encoder_anchor_decay=1.0))


def test_resume_from_a_checkpoint_with_one_optimizer_group(tone_corpus, tmp_path):
    """Checkpoints written before the encoder/rest split (one AdamW group) still resume."""
    torch.manual_seed(0)
    cfg = tiny_train_config(tone_corpus, tmp_path / "exp", max_steps=4, checkpoint_every=4)
    train(cfg)
    path = tmp_path / "exp" / "checkpoint-4.pt"
    ckpt = load_checkpoint(path)
    opt = ckpt["optimizer"]
    model = asr.trainer._build_model(cfg, type("T", (), {"vocab_size": ckpt["model"]["head.weight"].shape[0]})())
    # Rebuild the old layout: one group over model.parameters(), in order.
    encoder = list(model.encoder.parameters())
    grouped = encoder + [p for p in model.parameters() if all(p is not q for q in encoder)]
    new_index = [next(i for i, q in enumerate(grouped) if q is p) for p in model.parameters()]
    old = {"state": {i: opt["state"][j] for i, j in enumerate(new_index) if j in opt["state"]},
           "param_groups": [{**{k: v for k, v in opt["param_groups"][1].items() if k not in ("name", "lr_scale")},
                             "params": list(range(len(grouped)))}]}
    torch.save({**ckpt, "optimizer": old}, path)
    train(tiny_train_config(tone_corpus, tmp_path / "exp", max_steps=6, checkpoint_every=4))
    resumed = load_checkpoint(tmp_path / "exp" / "checkpoint-6.pt")["optimizer"]
    assert [g["name"] for g in resumed["param_groups"]] == ["encoder", "rest"]
    assert resumed["state"][0]["step"] == 6


def test_augment_overrides_set_the_augmentation(tone_corpus, tmp_path, monkeypatch):
    cfg = TrainConfig().with_overrides(["augment_overrides.p_reverb=0.9", "augment_overrides.rt60=[0.2, 0.8]"])
    seen = []
    real = asr.trainer.SpeechDataset

    def spy(utts, tokenizer, augment_cfg=None, **kw):
        seen.append(augment_cfg)
        return real(utts, tokenizer, augment_cfg, **kw)

    monkeypatch.setattr(asr.trainer, "SpeechDataset", spy)
    train(tiny_train_config(tone_corpus, tmp_path / "exp", max_steps=1, augment=True,
                            augment_overrides=cfg.augment_overrides))
    assert seen[0].p_reverb == 0.9 and seen[0].rt60 == (0.2, 0.8) and seen[0].p_noise == 0.5
    with pytest.raises(ValueError, match="unknown augment_overrides"):
        train(tiny_train_config(tone_corpus, tmp_path / "bad", max_steps=1, augment=True,
                                augment_overrides={"p_reverbb": 0.9}))


def test_new_head_keeps_the_rest_and_carries_shared_rows(tiny_model, tone_corpus, tmp_path):
    """new_head: a run from a trained model with another vocabulary (BPE instead of characters):
    the encoder starts as the old one's, the rows of shared pieces are copied, the model file
    holds the new tokenizer, and it decodes; without init_from it is refused."""
    old, old_tok = model_from_checkpoint(load_checkpoint(tiny_model))
    new_tok = train_tokenizer(["one two three", "two three four"] * 20, "bpe", 30)
    old_copy = model_from_checkpoint(load_checkpoint(tiny_model))[0]
    replace_head(old_copy, old_tok.pieces, new_tok.pieces)
    shared = [(i, old_tok.pieces.index(p)) for i, p in enumerate(new_tok.pieces) if p in old_tok.pieces]
    assert len(shared) >= 2 and shared[0] == (0, 0)           # the blank and some letters
    for i, j in shared:
        assert torch.equal(old_copy.head.weight[i], old.head.weight[j])
    assert old_copy.head.out_features == old_copy.config.vocab_size == new_tok.vocab_size
    assert all(torch.equal(a, b) for a, b in zip(old_copy.encoder.state_dict().values(),
                                                 old.encoder.state_dict().values()))

    torch.manual_seed(0)
    path = train(tiny_train_config(tone_corpus, tmp_path / "bpe", max_steps=3, checkpoint_every=3,
                                   init_from=str(tiny_model), new_head=True, tokenizer="bpe", vocab_size=12))
    state = load_checkpoint(path)
    assert state["model_config"]["vocab_size"] == Tokenizer.from_dict(state["tokenizer"]).vocab_size == 12
    assert state["tokenizer"]["kind"] == "bpe"
    ev = asr.evaluate(tone_corpus / "valid.jsonl", asr.load_model(path), progress=False)
    assert ev.result.wer >= 0.0
    with pytest.raises(ValueError, match="new_head needs init_from"):
        train(tiny_train_config(tone_corpus, tmp_path / "no-init", max_steps=1, new_head=True))
