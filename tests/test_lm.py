"""Text LM: training lowers perplexity; shallow fusion with weight 0 equals plain beam search, and a
confident LM changes what an ambiguous acoustic model decodes."""

import pytest

import torch
from typer.testing import CliRunner

import asr
from asr.cli import app
from asr.decode import BeamSearchDecoder, DecodingOptions
from asr.lm import (FusionLM, LMConfig, LSTMLM, LMTrainConfig, LSTMStepper, lm_loss, load_lm, perplexity, read_text,
                    sequence_log_probs, train_lm)
from asr.tokenizer import CharTokenizer

runner = CliRunner()


def test_lm_learns_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(["bad face egg", "egg head", "bad bead"] * 50) + "\n")
    tok = CharTokenizer()
    path, ppl = train_lm(LMTrainConfig(text=(str(text),), out=str(tmp_path / "lm.pt"), steps=150,
                                       embed_dim=32, hidden=64, batch_tokens=400), tok)
    assert ppl < 6.0 < tok.vocab_size / 4        # near-deterministic text, far below uniform (30)
    lm, tok2 = load_lm(path)
    assert tok2.pieces == tok.pieces
    assert perplexity(lm, read_text([text], tok)) == pytest.approx(ppl, rel=0.2)


def test_sequence_log_probs_are_each_sequences_own():
    """One log-prob per sequence, the same batched with others of other lengths as alone, and
    summing to minus the LM loss."""
    torch.manual_seed(0)
    lm = LSTMLM(LMConfig(vocab_size=30, embed_dim=12, hidden=20)).eval()
    seqs = [[4, 17, 3], [], [29, 1, 5, 5, 8, 2]]
    batched = sequence_log_probs(lm, seqs)
    assert batched == pytest.approx([sequence_log_probs(lm, [s])[0] for s in seqs], abs=1e-5)
    assert all(v < 0 for v in batched)
    with torch.no_grad():
        assert sum(batched) == pytest.approx(-float(lm_loss(lm, seqs)[0]), rel=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_numpy_stepper_matches_torch_lstm(layers):
    torch.manual_seed(layers)
    lm = LSTMLM(LMConfig(vocab_size=30, embed_dim=12, hidden=20, n_layers=layers)).eval()
    tokens = [0, 4, 17, 3, 29, 1]
    with torch.no_grad():
        h, _ = lm.hidden_states(torch.tensor([tokens]))
        expected = lm.logits_from_states(h[0]).log_softmax(-1).numpy()
    stepper, state = LSTMStepper(lm), None
    for i, token in enumerate(tokens):
        state, log_probs = stepper.step(token, state)
        assert abs(log_probs - expected[i]).max() < 1e-5


def test_fusion_weight_zero_reproduces_beam_search():
    torch.manual_seed(0)
    tok = CharTokenizer()
    lm = LSTMLM(LMConfig(vocab_size=tok.vocab_size, embed_dim=16, hidden=32))
    lp = torch.randn(2, 30, tok.vocab_size).mul(3).log_softmax(-1)
    lengths = torch.tensor([30, 22])
    plain = BeamSearchDecoder(tok, DecodingOptions(beam_size=8))(lp, lengths)
    fused = BeamSearchDecoder(tok, DecodingOptions(beam_size=8, lm_weight=0.0), FusionLM(lm))(lp, lengths)
    assert [r.tokens for r in fused] == [r.tokens for r in plain]


def test_confident_lm_resolves_acoustic_ambiguity(tmp_path):
    tok = CharTokenizer()
    text = tmp_path / "t.txt"
    text.write_text("ab\n" * 200)
    path, _ = train_lm(LMTrainConfig(text=(str(text),), out=str(tmp_path / "lm.pt"), steps=120, embed_dim=16,
                                     hidden=32, batch_tokens=200), tok)
    lm, _ = load_lm(path)
    a, b, c = (tok.pieces.index(x) for x in "abc")
    p = torch.full((1, 3, tok.vocab_size), 1e-4)
    p[0, 0, a] = 1.0
    p[0, 1, c], p[0, 1, b] = 0.55, 0.45          # acoustics lean to "ac", the LM knows "ab"
    p[0, 2, 0] = 1.0
    lp = (p / p.sum(-1, keepdim=True)).log()
    n = torch.tensor([3])
    assert BeamSearchDecoder(tok, DecodingOptions(beam_size=8))(lp, n)[0].text == "ac"
    assert BeamSearchDecoder(tok, DecodingOptions(beam_size=8, lm_weight=1.0), FusionLM(lm))(lp, n)[0].text == "ab"


def test_lm_cli_train_and_fused_evaluate(tiny_model, tone_corpus, tmp_path):
    text = tmp_path / "t.txt"
    lines = [u.text for u in asr.read_manifest(tone_corpus / "train.jsonl")]
    text.write_text("\n".join(lines * 5) + "\n")
    res = runner.invoke(app, ["lm", "train", str(text), "--tokenizer", str(tiny_model), "--out",
                              str(tmp_path / "lm.pt"), "--steps", "30", "--embed-dim", "16", "--hidden", "32"])
    assert res.exit_code == 0, res.output
    assert "held-out perplexity" in res.stdout
    fused = runner.invoke(app, ["evaluate", str(tone_corpus / "valid.jsonl"), "--model", str(tiny_model),
                                "--lm", str(tmp_path / "lm.pt"), "--lm-weight", "0.0"])
    plain = runner.invoke(app, ["evaluate", str(tone_corpus / "valid.jsonl"), "--model", str(tiny_model),
                                "--beam-size", "8"])
    assert fused.exit_code == 0 and plain.exit_code == 0, fused.output
    wer = lambda res: res.stdout.strip().splitlines()[-1].split(" RTF")[0]  # noqa: E731
    assert wer(fused) == wer(plain)
    res = runner.invoke(app, ["lm", "tune", str(tone_corpus / "valid.jsonl"), "--model", str(tiny_model),
                              "--lm", str(tmp_path / "lm.pt"), "--weights", "0,0.3", "--word-scores", "0"])
    assert res.exit_code == 0, res.output
    assert "best: --lm-weight" in res.stdout
