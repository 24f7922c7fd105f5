"""CTC acoustic model: convolutional subsampling + Conformer encoder + CTC head.

Every sequence module is ``forward(x, lengths) -> (y, lengths)`` with x of shape (B, T, D) and
integer lengths (B,). Padded frames are zeroed before every convolution and masked out of
attention, so an utterance gives the same output alone or padded in a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .config import DictConfig
from .features import N_MELS, GlobalCMVN, SpecAugment
from .lm import LMConfig, LSTMLM


@dataclass
class ModelConfig(DictConfig):
    vocab_size: int = 256
    n_mels: int = N_MELS
    encoder: str = "conformer"      # conformer | whisper (Transformer, see asr/whisper.py)
    frontend: str = "fbank"         # fbank (natural-log mel, CMVN) | whisper (log10 mel, fixed norm)
    subsampling: int = 4            # 4 or 8 (8 suits BPE units); whisper: 2, or 4 with an adapter
    subsampling_channels: int = 64
    d_model: int = 144
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    dropout: float = 0.1
    adapter_layers: int = 0         # whisper: Conformer blocks (after a stride-2 conv) between encoder and head
    adapter_dim: int = 256
    block_final_norm: bool = False  # True: Conformer's LayerNorm at each block's end (slow to start with short warmup)
    # Text side: the CTC output layer's token rows ARE the LM's token embedding matrix (one
    # tensor; blank keeps its own row) and the encoder projects into that embedding space.
    share_embedding: bool = False
    embed_dim: int = 192
    lm_hidden: int = 512
    lm_layers: int = 1

    def __post_init__(self):
        if self.encoder not in ("conformer", "whisper") or self.frontend not in ("fbank", "whisper"):
            raise ValueError("encoder must be conformer or whisper; frontend fbank or whisper")
        if self.encoder == "whisper" and self.subsampling != (4 if self.adapter_layers else 2):
            raise ValueError("the whisper encoder subsamples 2x, 4x with adapter layers")
        if self.encoder == "conformer" and (self.subsampling not in (4, 8) or self.adapter_layers):
            raise ValueError("subsampling must be 4 or 8 (adapter layers are for the whisper encoder)")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be an even integer")


    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        # Checkpoints from before a field existed were made with its old behaviour.
        return super().from_dict({**LEGACY_DEFAULTS, **d})


LEGACY_DEFAULTS = {"block_final_norm": True}


def tiny(**overrides) -> ModelConfig:
    """~0.17M parameters: for tests and smoke runs."""
    return replace(ModelConfig(subsampling_channels=16, d_model=64, n_layers=2, n_heads=2, ff_mult=2,
                               conv_kernel=7), **overrides)


def small(**overrides) -> ModelConfig:
    """~8.6M parameters, 8x subsampling: the default model size, trainable on a laptop CPU."""
    return replace(ModelConfig(subsampling=8, subsampling_channels=64, d_model=192, n_layers=10,
                               n_heads=4, ff_mult=4, conv_kernel=15), **overrides)


def medium(**overrides) -> ModelConfig:
    """~30M parameters, 4x subsampling: for GPU training on real corpora."""
    return replace(ModelConfig(subsampling=4, subsampling_channels=128, d_model=384, n_layers=12,
                               n_heads=6, ff_mult=4, conv_kernel=31), **overrides)


def whisper_tiny(**overrides) -> ModelConfig:
    """~7.8M parameters: Whisper tiny's encoder shape (4 Transformer layers of 384, 20 ms frames),
    meant to start from Whisper's weights (TrainConfig.pretrained_encoder)."""
    return replace(ModelConfig(encoder="whisper", frontend="whisper", subsampling=2, d_model=384,
                               n_layers=4, n_heads=6, ff_mult=4), **overrides)


def whisper_tiny_adapter(**overrides) -> ModelConfig:
    """~11.0M parameters: Whisper tiny's encoder, then a stride-2 conv to 256 and 2 Conformer
    blocks (40 ms frames). Trained with the pretrained encoder frozen (TrainConfig.freeze_encoder),
    only the 3.4M adapter and head learn, which is fast on a CPU."""
    return replace(whisper_tiny(subsampling=4, adapter_layers=2, adapter_dim=256), **overrides)


PRESETS = {"tiny": tiny, "small": small, "medium": medium, "whisper_tiny": whisper_tiny,
           "whisper_tiny_adapter": whisper_tiny_adapter}


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) -> (B, T) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class ConvSubsampling(nn.Module):
    """Stride-2 3x3 Conv2d layers over (time, frequency), then a projection to d_model."""

    def __init__(self, n_mels: int, channels: int, d_model: int, factor: int):
        super().__init__()
        n = int(math.log2(factor))
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=2, padding=1)
                                   for i in range(n))
        freq = n_mels
        for _ in range(n):
            freq = (freq - 1) // 2 + 1
        self.proj = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, n_mels) -> (B, T', d_model), T' = T / factor rounded up."""
        x = x.unsqueeze(1)
        for conv in self.convs:
            x = x * lengths_to_mask(lengths, x.shape[2])[:, None, :, None]
            x = F.silu(conv(x))
            lengths = (lengths - 1) // 2 + 1
        b, c, t, f = x.shape
        return self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f)), lengths


def rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) on (B, H, T, Dh)."""
    t, dh = x.shape[-2], x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, dh, 2, device=x.device, dtype=torch.float32) / dh))
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class FeedForward(nn.Sequential):
    def __init__(self, d: int, mult: int, dropout: float):
        super().__init__(nn.LayerNorm(d), nn.Linear(d, d * mult), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(d * mult, d), nn.Dropout(dropout))


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v, attn_mask=mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class ConvModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv, LayerNorm, SiLU, pointwise conv (LayerNorm, not
    BatchNorm, so padding and batch composition never change the statistics)."""

    def __init__(self, d: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Linear(d, 2 * d)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.norm2 = nn.LayerNorm(d)
        self.pw2 = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = F.glu(self.pw1(self.norm(x)), dim=-1) * mask[..., None]
        x = self.dw(x.transpose(1, 2)).transpose(1, 2)
        return self.drop(self.pw2(F.silu(self.norm2(x))))


class ConformerBlock(nn.Module):
    """Macaron Conformer block (Gulati et al. 2020): FF/2, self-attention, conv, FF/2, LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.dropout)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.dropout)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(d) if cfg.block_final_norm else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.drop(self.attn(x, mask))
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class BlockStack(nn.Module):
    """An encoder made of a stem (subsampling), blocks and a final norm: (B, T, n_mels) -> (B, T', d_model).

    Training may keep the bottom fixed and let only the top `trainable_top` blocks (and the final
    norm) learn: `bottom` is then what an encoder cache stores (asr/encoder_cache.py), `top` what
    runs at every step. With trainable_top = 0 (inference) `bottom` is the whole encoder."""

    trainable_top = 0
    blocks: nn.ModuleList
    final_norm: nn.Module

    def stem(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    def split(self) -> int:
        """Index of the first block `top` runs."""
        return len(self.blocks) - self.trainable_top

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.top(*self.bottom(x, lengths))

    def bottom(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.stem(x, lengths)
        mask = lengths_to_mask(lengths, x.shape[1])
        for block in self.blocks[:self.split]:
            x = block(x, mask)
        return (x if self.trainable_top else self.final_norm(x) * mask[..., None]), lengths

    def top(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.trainable_top:
            return x, lengths
        mask = lengths_to_mask(lengths, x.shape[1])
        for block in self.blocks[self.split:]:
            x = block(x, mask)
        return self.final_norm(x) * mask[..., None], lengths

    def top_modules(self) -> list[nn.Module]:
        """What `top` trains (nothing while trainable_top is 0)."""
        if not self.trainable_top:
            return []
        return [*self.blocks[self.split:], self.final_norm]


class Encoder(BlockStack):
    """Conformer encoder: convolutional subsampling, Conformer blocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.subsampling = ConvSubsampling(cfg.n_mels, cfg.subsampling_channels, cfg.d_model, cfg.subsampling)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.n_layers))
        # With pre-LN blocks the residual stream is normalised once, at the end.
        self.final_norm = nn.Identity() if cfg.block_final_norm else nn.LayerNorm(cfg.d_model)

    def stem(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.subsampling(x, lengths)


class Adapter(nn.Module):
    """Between a (pretrained) encoder and the head: stride-2 conv from d_model to adapter_dim,
    then Conformer blocks. (B, T, d_model) -> (B, ceil(T / 2), adapter_dim)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        block_cfg = replace(cfg, d_model=cfg.adapter_dim, n_heads=4, block_final_norm=False)
        self.down = nn.Conv1d(cfg.d_model, cfg.adapter_dim, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(ConformerBlock(block_cfg) for _ in range(cfg.adapter_layers))
        self.final_norm = nn.LayerNorm(cfg.adapter_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.gelu(self.down(x.transpose(1, 2))).transpose(1, 2)
        lengths = (lengths - 1) // 2 + 1
        mask = lengths_to_mask(lengths, x.shape[1])
        x = x * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x) * mask[..., None], lengths


class CTCModel(nn.Module):
    """Normalised log-mel features -> CTC logits over the tokenizer's vocabulary (blank = 0)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.cmvn = GlobalCMVN(cfg.n_mels)
        if cfg.frontend == "whisper":       # Whisper's fixed (x + 4) / 4, not data statistics
            from .whisper import NORM_MEAN, NORM_STD
            self.cmvn.mean.fill_(NORM_MEAN)
            self.cmvn.std.fill_(NORM_STD)
        if cfg.encoder == "whisper":
            from .whisper import WhisperEncoder
            self.encoder = WhisperEncoder(cfg)
        else:
            self.encoder = Encoder(cfg)
        self.adapter = Adapter(cfg) if cfg.adapter_layers else None
        d = cfg.adapter_dim if cfg.adapter_layers else cfg.d_model
        self.frozen_encoder = False     # set by the trainer: the encoder then stays in eval mode
        if cfg.share_embedding:
            self.lm = LSTMLM(LMConfig(cfg.vocab_size, cfg.embed_dim, cfg.lm_hidden, cfg.lm_layers, cfg.dropout))
            self.head_proj = nn.Linear(d, cfg.embed_dim)
            self.blank_embedding = nn.Parameter(torch.randn(1, cfg.embed_dim) * cfg.embed_dim ** -0.5)
            self.head_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        else:
            self.head = nn.Linear(d, cfg.vocab_size)
        self.spec_augment: SpecAugment | None = None   # set by the trainer; active in train mode

    def output_embeddings(self) -> torch.Tensor:
        """(V, embed_dim) CTC output rows: the blank's own row, then the LM's token embeddings."""
        return torch.cat([self.blank_embedding, self.lm.embedding.weight[1:]], dim=0)

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.config.share_embedding:
            return self.head_proj(hidden) @ self.output_embeddings().t() + self.head_bias
        return self.head(hidden)

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor,
               encoded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """encoded=True: `feats` are already the output of the encoder's fixed bottom (a cache)."""
        if encoded:
            x = self.spec_augment(feats, lengths) if self.spec_augment is not None else feats
            x, lengths = self.encoder.top(x, lengths)
        else:
            x = self.cmvn(feats)
            if self.spec_augment is not None:
                x = self.spec_augment(x, lengths)
            x, lengths = self.encoder(x, lengths)
        return self.adapter(x, lengths) if self.adapter is not None else (x, lengths)

    def freeze_encoder(self, trainable_top: int = 0) -> None:
        """Keep the encoder's weights fixed (and its dropout off) while the rest trains, except
        its top `trainable_top` blocks and final norm."""
        if not 0 <= trainable_top <= len(self.encoder.blocks):
            raise ValueError(f"trainable_top={trainable_top}: the encoder has {len(self.encoder.blocks)} blocks")
        self.frozen_encoder = True
        self.encoder.trainable_top = trainable_top
        self.encoder.requires_grad_(False)
        for m in self.encoder.top_modules():
            m.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> "CTCModel":
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()
            for m in self.encoder.top_modules():
                m.train(mode)
        return self

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor,
                encoded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """feats: (B, T, n_mels) log-mel, lengths: (B,) -> logits (B, T', vocab), lengths (B,)."""
        hidden, lengths = self.encode(feats, lengths, encoded)
        return self.head_logits(hidden), lengths

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def replace_head(model: CTCModel, old_pieces: list[str], new_pieces: list[str]) -> None:
    """Give `model` a new CTC head over `new_pieces` (e.g. a larger BPE vocabulary), in place. The
    rows (weight and bias) of pieces in both vocabularies, the blank included, are copied from the
    old head; the others start as a new `nn.Linear`'s (torch's RNG), so the encoder and adapter keep
    what they learnt."""
    if model.config.share_embedding:
        raise ValueError("new_head: a model whose CTC head shares the LM's embeddings keeps its vocabulary")
    old = model.head
    index = {p: i for i, p in enumerate(old_pieces)}
    new_rows = [i for i, p in enumerate(new_pieces) if p in index]
    old_rows = [index[new_pieces[i]] for i in new_rows]
    head = nn.Linear(old.in_features, len(new_pieces)).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        head.weight[new_rows] = old.weight[old_rows]
        head.bias[new_rows] = old.bias[old_rows]
    model.head = head
    model.config = replace(model.config, vocab_size=len(new_pieces))
