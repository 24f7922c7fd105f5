import pytest

from asr.metrics import read_errors, score, sign_test, write_report


def test_report_round_trip_gives_each_utterances_errors(tmp_path):
    result = score(["the cat sat", "a dog", "hello there"], ["the cat sat", "a fog ran", ""], ["u1", "u2", "u3"])
    assert (result.sub, result.dele, result.ins, result.n_ref) == (1, 2, 1, 7)
    write_report(result, tmp_path, "dev")
    assert read_errors(tmp_path / "errs-dev.txt") == {"u1": 0, "u2": 2, "u3": 2}


def test_read_errors_rejects_other_files(tmp_path):
    (tmp_path / "x.txt").write_text("not a report\n")
    with pytest.raises(ValueError, match="no per-utterance lines"):
        read_errors(tmp_path / "x.txt")


def test_sign_test_counts_changes_and_leaves_ties_out():
    before = {f"u{i}": 3 for i in range(12)}
    after = {**before, **{f"u{i}": 1 for i in range(10)}}          # 10 better, 2 tied
    assert sign_test(before, after) == (10, 0, pytest.approx(2 / 2 ** 10))
    assert sign_test(after, before) == (0, 10, pytest.approx(2 / 2 ** 10))
    mixed = {**before, "u0": 0, "u1": 5}
    assert sign_test(before, mixed) == (1, 1, 1.0)
    assert sign_test(before, before) == (0, 0, 1.0)
    assert sign_test(before, {"u0": 0, "other": 9})[:2] == (1, 0)    # only ids both scored
    with pytest.raises(ValueError, match="share no utterance"):
        sign_test(before, {"other": 1})
