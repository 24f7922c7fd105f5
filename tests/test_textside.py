"""Shared embeddings, joint LM loss, transfer from a text LM."""

import random

import pytest
import torch

from asr.lm import LMConfig, LSTMLM, lm_loss, save_lm
from asr.model import CTCModel, tiny
from asr.tokenizer import CharTokenizer
from asr.trainer import TrainConfig, _Run, _setup_text_side, compute_loss, text_side_loss, train

from conftest import tiny_train_config

TOK = CharTokenizer()


def shared_model(**kw):
    torch.manual_seed(0)
    return CTCModel(tiny(vocab_size=TOK.vocab_size, share_embedding=True, embed_dim=24, lm_hidden=32, **kw))


def batch_of(n=2, t=60, u=5):
    g = torch.Generator().manual_seed(0)
    return {"feats": torch.randn(n, t, 80, generator=g), "lengths": torch.tensor([t, t - 10][:n]),
            "targets": torch.randint(3, TOK.vocab_size, (n, u), generator=g), "target_lengths": torch.tensor([u, u - 2][:n])}


def test_ctc_output_rows_are_the_lm_embedding_tensor():
    model = shared_model()
    rows = model.output_embeddings()
    assert torch.equal(rows[1:], model.lm.embedding.weight[1:])
    before = model.lm.embedding.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, n = compute_loss(model, batch_of(), "cpu")       # CTC loss only
    (loss / n).backward()
    assert model.lm.embedding.weight.grad is not None and model.lm.embedding.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(model.lm.embedding.weight, before)   # the LM's embeddings moved


def test_frozen_embedding_stays(tmp_path):
    model = shared_model()
    _setup_text_side(model, TrainConfig(freeze_embedding=True), TOK)
    before = model.lm.embedding.weight.detach().clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss, n = compute_loss(model, batch_of(), "cpu")
    (loss / n).backward()
    opt.step()
    assert torch.equal(model.lm.embedding.weight, before)


def test_joint_loss_is_weighted_sum_of_parts():
    model = shared_model().eval()   # no dropout: both sides see the same network
    b = batch_of()
    text_pool = [[3, 4, 5], [6, 7]]
    cfg = TrainConfig(joint_lm_weight=0.3, lm_text_sentences=4, seed=1)
    run = _Run(cfg, model, model, TOK, None, None, None, None, 1, torch.device("cpu"), None, None, None, 0.0,
               text_pool=text_pool)
    outputs = {}
    ctc, n = compute_loss(model, b, "cpu", outputs)
    extra, parts = text_side_loss(run, b, outputs, step=5)
    rng = random.Random(f"{cfg.seed}-5")
    seqs = [b["targets"][0, :5].tolist(), b["targets"][1, :3].tolist()] + [text_pool[rng.randrange(2)] for _ in range(4)]
    lm_sum, tokens = lm_loss(model.lm, seqs)
    extra, lm_sum = extra.detach(), lm_sum.detach()
    assert float(extra) == pytest.approx(0.3 * float(lm_sum) / tokens, rel=1e-5)
    assert parts["lm_loss"] == pytest.approx(float(lm_sum) / tokens, rel=1e-5)


def test_transfer_loads_the_lm_it_claims(tmp_path):
    lm = LSTMLM(LMConfig(TOK.vocab_size, 24, 32, 1))
    torch.nn.init.normal_(lm.lstm.weight_ih_l0, std=0.5)
    save_lm(tmp_path / "lm.pt", lm, TOK)
    model = shared_model()
    _setup_text_side(model, TrainConfig(init_lm=str(tmp_path / "lm.pt")), TOK)
    for k, v in lm.state_dict().items():
        assert torch.equal(model.lm.state_dict()[k], v), k
    bad = LSTMLM(LMConfig(TOK.vocab_size, 16, 32, 1))
    save_lm(tmp_path / "bad.pt", bad, TOK)
    with pytest.raises(ValueError, match="does not match"):
        _setup_text_side(shared_model(), TrainConfig(init_lm=str(tmp_path / "bad.pt")), TOK)
    with pytest.raises(ValueError, match="share_embedding"):
        _setup_text_side(CTCModel(tiny(vocab_size=TOK.vocab_size)), TrainConfig(joint_lm_weight=0.1), TOK)


def test_joint_and_distill_training_run(tone_corpus, tmp_path):
    lm = LSTMLM(LMConfig(TOK.vocab_size, 24, 32, 1))
    save_lm(tmp_path / "lm.pt", lm, TOK)
    text = tmp_path / "text.txt"
    text.write_text("bad face\negg head\n" * 10)
    overrides = {"dropout": 0.0, "share_embedding": True, "embed_dim": 24, "lm_hidden": 32}
    train(tiny_train_config(tone_corpus, tmp_path / "exp", max_steps=10, model_overrides=overrides,
                            joint_lm_weight=0.5, lm_text=str(text), init_lm=str(tmp_path / "lm.pt"),
                            distill_weight=0.2, log_every=5))
    header, *rows = (tmp_path / "exp" / "train.csv").read_text().splitlines()
    assert "lm_loss" in header and "distill_loss" in header
    assert all(float(v) >= 0 for r in rows for v in r.split(",")[-2:])
