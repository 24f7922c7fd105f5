import pytest
import torch

from asr.decode import BeamSearchDecoder, DecodingOptions, decode, greedy_decode, skip_blank_runs
from asr.tokenizer import CharTokenizer

TOK = CharTokenizer()


def peaked(symbols: list[str], vocab=TOK) -> torch.Tensor:
    """(1, T, V) log-probs with probability ~1 on the given symbol at each frame."""
    lp = torch.full((1, len(symbols), vocab.vocab_size), -20.0)
    for t, s in enumerate(symbols):
        lp[0, t, vocab.pieces.index(s)] = 0.0
    return lp.log_softmax(-1)


@pytest.mark.parametrize("frames,text,tokens_at", [
    (["a", "a", "<blk>", "b"], "ab", [0, 3]),               # repeats merge
    (["a", "<blk>", "a"], "aa", [0, 2]),                    # blank separates repeats
    (["<blk>", "<blk>"], "", []),                           # all blank
    (["c", "|", "|", "d", "<blk>", "e"], "c de", [0, 1, 3, 5]),  # word separator
    (["h", "i", "|", "<blk>", "h", "h", "i"], "hi hi", [0, 1, 2, 4, 6]),
])
def test_greedy_hand_computed(frames, text, tokens_at):
    (res,) = greedy_decode(peaked(frames), torch.tensor([len(frames)]), TOK)
    assert res.text == text
    assert res.frames == tokens_at


def test_greedy_respects_lengths():
    lp = peaked(["a", "b", "c", "d"])
    (res,) = greedy_decode(lp, torch.tensor([2]), TOK)
    assert res.text == "ab"


def test_greedy_score_is_path_log_prob():
    lp = torch.log(torch.tensor([[[0.6, 0.4] + [0.0] * (TOK.vocab_size - 2)]]).clamp_min(1e-12))
    (res,) = greedy_decode(lp, torch.tensor([1]), TOK)
    assert res.score == pytest.approx(float(torch.log(torch.tensor(0.6))), abs=1e-5)


def test_beam_matches_greedy_on_peaked_input():
    frames = ["<blk>", "b", "b", "<blk>", "a", "|", "d", "<blk>"]
    lp, lengths = peaked(frames), torch.tensor([len(frames)])
    greedy = greedy_decode(lp, lengths, TOK)[0]
    beam = decode(lp, lengths, TOK, DecodingOptions(beam_size=8))[0]
    assert beam.text == greedy.text == "ba d"
    assert beam.tokens == greedy.tokens
    assert beam.frames == greedy.frames


def _blank_beats_each_letter() -> torch.Tensor:
    """Two frames: blank 0.4, 'a' 0.3, 'b' 0.3. Greedy picks blank at each frame, but 'a' summed
    over its paths is more likely."""
    p = torch.full((1, 2, TOK.vocab_size), 1e-6)
    p[0, :, 0] = 0.4
    p[0, :, TOK.pieces.index("a")] = 0.3
    p[0, :, TOK.pieces.index("b")] = 0.3
    return (p / p.sum(-1, keepdim=True)).log()


def test_beam_finds_better_path_than_greedy():
    lp = _blank_beats_each_letter()
    assert greedy_decode(lp, torch.tensor([2]), TOK)[0].text == ""
    assert BeamSearchDecoder(TOK, DecodingOptions(beam_size=8))(lp, torch.tensor([2]))[0].text != ""


def test_beam_size_token_limits_the_tokens_tried_per_frame():
    # One token per hypothesis and frame: only the blank is tried, so the beam cannot leave greedy's path.
    lp = _blank_beats_each_letter()
    assert BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, beam_size_token=1))(lp, torch.tensor([2]))[0].text == ""
    assert BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, beam_size_token=3))(lp, torch.tensor([2]))[0].text != ""
    with pytest.raises(ValueError, match="beam_size_token"):
        BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, beam_size_token=-1))


def test_decode_checks_shapes():
    with pytest.raises(ValueError, match="classes"):
        greedy_decode(torch.zeros(1, 3, 5), torch.tensor([3]), TOK)
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        greedy_decode(torch.zeros(3, TOK.vocab_size), torch.tensor([3]), TOK)
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(torch.zeros(2, 3, TOK.vocab_size), torch.tensor([3]), TOK)


def test_skip_blank_runs_keeps_one_blank_per_run():
    frames = ["<blk>", "<blk>", "<blk>", "a", "<blk>", "<blk>", "a", "<blk>"]
    lp = peaked(frames)
    lp = torch.cat([lp, peaked(["b", "<blk>", "<blk>", "c"] + ["<blk>"] * 4)])
    out, lengths, kept = skip_blank_runs(lp, torch.tensor([8, 4]), TOK.blank_id, 0.99)
    assert kept[0].tolist() == [0, 3, 4, 6, 7]
    assert kept[1].tolist() == [0, 1, 3]          # frames past the length are not looked at
    assert lengths.tolist() == [5, 3] and out.shape[1] == 5
    assert torch.equal(out[0], lp[0, kept[0]])


def test_beam_with_blank_skipping_gives_the_same_text_and_original_frames():
    torch.manual_seed(0)
    frames = ["<blk>"] * 5 + ["a"] + ["<blk>"] * 6 + ["a", "<blk>", "b"] + ["<blk>"] * 7 + ["|", "c"] + ["<blk>"] * 3
    lp = (peaked(frames) + 0.5 * torch.randn(1, len(frames), TOK.vocab_size)).log_softmax(-1)
    lengths = torch.tensor([len(frames)])
    full = BeamSearchDecoder(TOK, DecodingOptions(beam_size=8))(lp, lengths)[0]
    fast = BeamSearchDecoder(TOK, DecodingOptions(beam_size=8, blank_skip_threshold=0.95))(lp, lengths)[0]
    assert fast.text == full.text == "aab c"
    assert fast.frames == full.frames == [5, 12, 14, 22, 23]
