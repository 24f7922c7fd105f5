import pytest
import torch

from asr.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from asr.model import PRESETS, CTCModel, ModelConfig, tiny
from asr.tokenizer import CharTokenizer


@pytest.mark.parametrize("subsampling,final_norm", [(4, True), (8, True), (4, False)])
def test_padding_invariance(subsampling, final_norm):
    torch.manual_seed(0)
    model = CTCModel(tiny(vocab_size=30, subsampling=subsampling, block_final_norm=final_norm)).eval()
    long_, short = torch.randn(1, 203, 80), torch.randn(1, 117, 80)
    batch = torch.zeros(2, 203, 80)
    batch[0], batch[1, :117] = long_[0], short[0]
    batch[1, 117:] = 5.0  # garbage in the padding must not leak into the valid frames
    with torch.no_grad():
        y, lengths = model(batch, torch.tensor([203, 117]))
        alone, alone_len = model(short, torch.tensor([117]))
        first, _ = model(long_, torch.tensor([203]))
    assert lengths[1] == alone_len[0]
    assert torch.allclose(y[1, : lengths[1]], alone[0], atol=1e-5)
    assert torch.allclose(y[0], first[0], atol=1e-5)


@pytest.mark.parametrize("factor,t,expected", [(4, 100, 25), (4, 101, 26), (8, 100, 13), (8, 7, 1)])
def test_output_lengths(factor, t, expected):
    model = CTCModel(tiny(vocab_size=10, subsampling=factor)).eval()
    with torch.no_grad():
        y, lengths = model(torch.randn(1, t, 80), torch.tensor([t]))
    assert lengths.tolist() == [expected]
    assert y.shape == (1, expected, 10)


def test_small_preset_size():
    n = CTCModel(PRESETS["small"](vocab_size=256)).num_params()
    assert 5e6 <= n <= 15e6


def test_config_validation():
    with pytest.raises(ValueError):
        ModelConfig(subsampling=6)
    with pytest.raises(ValueError):
        ModelConfig(d_model=100, n_heads=3)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = CTCModel(tiny(vocab_size=CharTokenizer().vocab_size)).eval()
    model.cmvn.mean.fill_(0.5)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, CharTokenizer())
    rebuilt, tok = model_from_checkpoint(load_checkpoint(path))
    assert rebuilt.config == model.config
    assert tok.pieces == CharTokenizer().pieces
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(1, 50, 80)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([50]))[0], rebuilt(x, torch.tensor([50]))[0])
