"""Word n-gram LM: ARPA files KenLM reads, lexicon-constrained beam search, CLI."""

import gzip

import pytest
import torch
from typer.testing import CliRunner

import asr
from asr.checkpoint import CheckpointError
from asr.cli import app
from asr.decode import BeamSearchDecoder, DecodingOptions
from asr.ngram import build_ngram, kneser_ney, lexicon, load_ngram, spell
from asr.tokenizer import CharTokenizer, train_tokenizer

runner = CliRunner()
TOK = CharTokenizer()


@pytest.fixture
def bat_lm(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The bat sat.\nA bat and a rat\nthe rat sat\n" * 5)
    words = tmp_path / "words"
    words.write_text("Zebra\nthe\nice cream\n")
    out = tmp_path / "lm.arpa.gz"
    counts = build_ngram([text], out, order=3, words=words, progress=False)
    return out, counts


def test_build_ngram_writes_an_arpa_file_with_normalised_words(bat_lm):
    out, counts = bat_lm
    lines = gzip.open(out, "rt").read().splitlines()
    assert lines[0] == "\\data\\" and lines[-1] == "\\end\\"
    assert counts[0] == 10               # the bat sat a and rat zebra + <s> </s> <unk>
    assert len(counts) == 3 and all(n > 0 for n in counts)
    assert all(line.count("\t") in (1, 2) for line in lines if line[:1] == "-")
    assert sorted(load_ngram(out).words) == ["a", "and", "bat", "rat", "sat", "the", "zebra"]


def _prob(logp, backoffs, context, word):
    """P(word | context) as KenLM reads an ARPA model: the longest n-gram held, else back off."""
    if (*context, word) in logp:
        return 10 ** logp[(*context, word)]
    return 10 ** backoffs.get(context, 0.0) * _prob(logp, backoffs, context[1:], word)


@pytest.mark.parametrize("order,prune", [(2, 0), (3, 0), (3, 1), (4, 1)])
def test_kneser_ney_sums_to_one_in_every_context(order, prune):
    """A proper backoff model: for seen, unseen and pruned contexts the next-word probabilities
    sum to 1 (the former estimator, arpabo's, left every backoff weight at 1 and did not)."""
    import random

    rng = random.Random(0)
    sents = [[rng.choice("abcdefg") for _ in range(rng.randint(1, 6))] for _ in range(200)]
    logp, backoffs = kneser_ney(sents, order, words=["zebra"], prune=prune)
    vocab = [g[0] for g in logp if len(g) == 1 and g[0] != "<s>"]
    assert {"zebra", "</s>", "<unk>"} <= set(vocab)
    for context in [(), ("<s>",), ("a",), ("zebra",), ("<s>", "a"), ("a", "b"), ("g", "zebra"), ("a", "b", "c")]:
        if len(context) < order:
            assert sum(_prob(logp, backoffs, context, w) for w in vocab) == pytest.approx(1.0, abs=1e-9)
    full, _ = kneser_ney(sents, order, words=["zebra"])
    n_top = lambda lp: sum(len(g) == order for g in lp)     # noqa: E731
    assert (n_top(logp) < n_top(full)) == (prune > 0 and order >= 3)
    # The empty sentence is no longer cheap (arpabo gave it the unigram probability of </s>).
    assert _prob(logp, backoffs, ("<s>",), "</s>") < 0.01


def test_lexicon_search_emits_only_the_lms_words(bat_lm):
    """Acoustics lean to "cat" (not a word of the LM): lexicon search picks "bat"; a char
    tokenizer's space is the silence between words."""
    c, b = TOK.pieces.index("c"), TOK.pieces.index("b")
    frames = [None, "a", "t", "|", "s", "a", "t"]
    p = torch.full((1, len(frames), TOK.vocab_size), 1e-4)
    p[0, 0, c], p[0, 0, b] = 0.6, 0.4
    for t, s in enumerate(frames[1:], start=1):
        p[0, t, TOK.pieces.index(s)] = 1.0
    lp, n = (p / p.sum(-1, keepdim=True)).log(), torch.tensor([len(frames)])
    assert BeamSearchDecoder(TOK, DecodingOptions(beam_size=8))(lp, n)[0].text == "cat sat"
    lm = load_ngram(bat_lm[0])
    res = BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, lm_weight=0.5, word_score=0.0), lm)(lp, n)[0]
    assert res.text == "bat sat"
    assert res.frames[0] == 0 and len(res.frames) == len(res.tokens)


def test_lexicon_spells_words_with_the_tokenizer():
    bpe = train_tokenizer(["the bat sat on the mat"] * 20 + ["a rat and a cat"] * 20, "bpe", 40)
    assert "".join(spell("bat", bpe)).replace("\u2581", "") == "bat"
    assert spell("b%t", TOK) is None                      # not spellable: left out
    assert lexicon(["bat", "b%t", "sat"], TOK) == {w: TOK.encode(w) for w in ("bat", "sat")}
    assert lexicon(["bat", "rat"], bpe) == {w: bpe.encode(w) for w in ("bat", "rat")}


def test_other_options_reuse_the_lexicon_search(bat_lm):
    """`with_options` (what `asr lm tune` does per grid point) keeps the built trie and KenLM and
    decodes as a decoder built from scratch with those options does."""
    lm = load_ngram(bat_lm[0])
    torch.manual_seed(0)
    lp = torch.randn(2, 30, TOK.vocab_size).log_softmax(-1)
    n = torch.tensor([30, 21])
    first = BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, lm_weight=0.5, word_score=0.0), lm)
    for w, b in [(0.1, 2.0), (2.0, -1.0)]:
        opts = DecodingOptions(beam_size=8, lm_weight=w, word_score=b)
        again = first.with_options(opts)
        assert again.search is first.search
        assert again(lp, n) == BeamSearchDecoder(TOK, opts, lm)(lp, n)


def test_bad_ngram_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an arpa file\n")
    with pytest.raises(CheckpointError, match="not an ARPA file"):
        load_ngram(bad)
    with pytest.raises(CheckpointError, match="no such LM file"):
        load_ngram(tmp_path / "missing.arpa")
    with pytest.raises(ValueError, match="order must be at least 2"):
        build_ngram([bad], tmp_path / "x.arpa", order=1)


def test_cli_builds_an_ngram_and_decodes_with_it(tiny_model, tone_corpus, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(u.text for u in asr.read_manifest(tone_corpus / "train.jsonl")) + "\n")
    out = tmp_path / "lm.arpa"
    res = runner.invoke(app, ["lm", "ngram", str(text), "--out", str(out), "--order", "2"])
    assert res.exit_code == 0, res.output
    assert "2-grams" in res.stdout and out.is_file()
    res = runner.invoke(app, ["evaluate", str(tone_corpus / "valid.jsonl"), "--model", str(tiny_model),
                              "--lm", str(out)])
    assert res.exit_code == 0, res.output
    wer = res.stdout.strip().splitlines()[-1].split()[1]
    tune = runner.invoke(app, ["lm", "tune", str(tone_corpus / "valid.jsonl"), "--model", str(tiny_model),
                               "--lm", str(out), "--weights", "0.5,1.3", "--word-scores", "-0.5"])
    assert tune.exit_code == 0, tune.output
    assert tune.stdout.splitlines()[2] == f"1.3\t-0.5\t{wer}"    # search-only grid == full evaluate
    rec = asr.load_model(tiny_model, lm=out)
    o = rec.options
    assert (o.beam_size, o.beam_size_token, o.lm_weight, o.word_score) == (128, 8, 1.3, -0.5)  # tuned defaults
    vocab = set(load_ngram(out).words)
    wav = asr.read_manifest(tone_corpus / "valid.jsonl")[0].audio_filepath
    assert set(rec.transcribe(wav).text.split()) <= vocab
    (tmp_path / "bad.arpa").write_text("junk\n")
    res = runner.invoke(app, ["transcribe", wav, "--model", str(tiny_model), "--lm", str(tmp_path / "bad.arpa")])
    assert res.exit_code == 1 and "not an ARPA file" in res.output


def test_nbest_lists_distinct_transcripts_best_first(bat_lm):
    """The n-best list starts with what the decoder returns, holds each transcript once, in falling
    score order, and `n` cuts it."""
    lm = load_ngram(bat_lm[0])
    torch.manual_seed(1)
    lp = torch.randn(2, 30, TOK.vocab_size).log_softmax(-1)
    n = torch.tensor([30, 21])
    dec = BeamSearchDecoder(TOK, DecodingOptions(beam_size=16, lm_weight=0.5, word_score=0.0), lm)
    lists = dec.nbest(lp, n)
    assert [hyps[0] for hyps in lists] == dec(lp, n)
    for hyps in lists:
        texts, scores = [h.text for h in hyps], [h.score for h in hyps]
        assert len(hyps) > 1 and len(set(texts)) == len(texts)
        assert scores == sorted(scores, reverse=True)
    assert [len(h) for h in dec.nbest(lp, n, 2)] == [2, 2]
