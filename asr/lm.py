"""Text language model over the acoustic model's tokens: an LSTM LM with tied input/output
embeddings, its training on text-only corpora, perplexity, and shallow fusion into beam search.

An LSTM (rather than a Transformer) keeps fusion cheap: each beam-search step advances one
recurrent state by one token. Token id 0 (the CTC blank) doubles as the LM's sentence
start/end marker, since blank never occurs in text.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DictConfig
from .io import atomic_write
from .text import normalize_text
from .tokenizer import Tokenizer

BOS = EOS = 0


@dataclass
class LMConfig(DictConfig):
    vocab_size: int = 256
    embed_dim: int = 192       # the token embedding size (shared with the CTC head when tied)
    hidden: int = 512
    n_layers: int = 1
    dropout: float = 0.1



class LSTMLM(nn.Module):
    """Token embedding E (V, D) -> LSTM -> projection to D -> logits h @ E^T + b."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.config = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        nn.init.normal_(self.embedding.weight, std=cfg.embed_dim ** -0.5)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden, cfg.n_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.proj = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.drop = nn.Dropout(cfg.dropout)

    def hidden_states(self, tokens: torch.Tensor, state=None):
        """(B, U) token ids -> (B, U, D) contextual states in embedding space, new LSTM state."""
        out, state = self.lstm(self.drop(self.embedding(tokens)), state)
        return self.proj(self.drop(out)), state

    def logits_from_states(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.embedding.weight.t() + self.bias

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, U) inputs (BOS + tokens) -> (B, U, V) next-token logits, lengths."""
        h, _ = self.hidden_states(tokens)
        return self.logits_from_states(h), lengths

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def lm_batch(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token sequences -> inputs (BOS + seq), targets (seq + EOS, padded with -100), lengths."""
    lengths = torch.tensor([len(s) + 1 for s in seqs])
    inputs = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    targets = torch.full_like(inputs, -100)
    for i, s in enumerate(seqs):
        inputs[i, 1:len(s) + 1] = torch.tensor(s, dtype=torch.long)
        targets[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        targets[i, len(s)] = EOS
    return inputs, targets, lengths


def _token_nll(lm: LSTMLM, seqs: list[list[int]], device="cpu") -> tuple[torch.Tensor, int]:
    """(B, U) next-token cross-entropy (with EOS; 0 on padding) and the number of predicted tokens."""
    inputs, targets, lengths = lm_batch(seqs)
    logits, _ = lm(inputs.to(device), lengths.to(device))
    targets = targets.to(device)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return nll, int((targets != -100).sum())


def lm_loss(lm: LSTMLM, seqs: list[list[int]], device="cpu") -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy (with EOS) and the number of predicted tokens."""
    nll, n = _token_nll(lm, seqs, device)
    return nll.sum(), n


@torch.no_grad()
def perplexity(lm: LSTMLM, seqs: list[list[int]], batch: int = 64) -> float:
    lm.eval()
    total, n = 0.0, 0
    for i in range(0, len(seqs), batch):
        loss, count = lm_loss(lm, seqs[i:i + batch])
        total, n = total + float(loss), n + count
    return math.exp(total / max(n, 1))


@torch.no_grad()
def sequence_log_probs(lm: LSTMLM, seqs: list[list[int]], batch: int = 64) -> list[float]:
    """log P(tokens + EOS) of each sequence under `lm`, in nats (for rescoring n-best lists)."""
    lm.eval()
    out = []
    for i in range(0, len(seqs), batch):
        out += (-_token_nll(lm, seqs[i:i + batch])[0].sum(1)).tolist()
    return out


def read_text(paths: list[str | Path], tokenizer: Tokenizer, max_tokens: int = 200) -> list[list[int]]:
    """Normalised, tokenised lines of text files (empty and over-long lines dropped)."""
    seqs = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8", errors="replace").splitlines():
            ids = tokenizer.encode(normalize_text(line))
            if 0 < len(ids) <= max_tokens:
                seqs.append(ids)
    return seqs


def save_lm(path: str | Path, lm: LSTMLM, tokenizer: Tokenizer, **extra) -> None:
    with atomic_write(path, "wb") as f:
        torch.save({"format": 1, "kind": "lm", "lm_config": lm.config.to_dict(),
                    "lm": {k: v.detach().cpu() for k, v in lm.state_dict().items()},
                    "tokenizer": tokenizer.to_dict(), **extra}, f)


def load_lm(path: str | Path) -> tuple[LSTMLM, Tokenizer]:
    state = _load(path)
    lm = LSTMLM(LMConfig.from_dict(state["lm_config"]))
    lm.load_state_dict(state["lm"])
    lm.eval()
    return lm, Tokenizer.from_dict(state["tokenizer"])


def _load(path: str | Path) -> dict:
    from .checkpoint import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such LM file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load LM ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("kind") != "lm":
        raise CheckpointError(f"{path}: not an asr language model")
    return state


@dataclass
class LMTrainConfig:
    text: tuple[str, ...] = ()
    valid_text: str = ""
    out: str = "exp/lm/lm.pt"
    embed_dim: int = 192
    hidden: int = 512
    n_layers: int = 1
    dropout: float = 0.1
    steps: int = 2000
    batch_tokens: int = 4000
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1


def train_lm(cfg: LMTrainConfig, tokenizer: Tokenizer) -> tuple[Path, float]:
    """Train on text files; returns the LM path and its held-out perplexity."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seqs = read_text(list(cfg.text), tokenizer)
    if not seqs:
        raise ValueError("no usable text lines to train the LM on")
    rng = random.Random(cfg.seed)
    rng.shuffle(seqs)
    valid = read_text([cfg.valid_text], tokenizer) if cfg.valid_text else seqs[: max(1, len(seqs) // 50)]
    train = seqs if cfg.valid_text else seqs[len(valid):] or seqs
    lm = LSTMLM(LMConfig(tokenizer.vocab_size, cfg.embed_dim, cfg.hidden, cfg.n_layers, cfg.dropout))
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=0.01)
    start = time.time()
    bar = tqdm(range(cfg.steps), desc="lm", unit="step", file=sys.stderr)
    for step in bar:
        batch, n = [], 0
        while n < cfg.batch_tokens:
            s = train[rng.randrange(len(train))]
            batch.append(s)
            n += len(s) + 1
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        lm.train()
        loss, count = lm_loss(lm, batch)
        opt.zero_grad()
        (loss / count).backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(ppl=f"{math.exp(float(loss.detach()) / count):.1f}")
    ppl = perplexity(lm, valid)
    save_lm(cfg.out, lm, tokenizer, train_config=asdict(cfg), valid_perplexity=ppl,
            minutes=(time.time() - start) / 60)
    return Path(cfg.out), ppl


class LSTMStepper:
    """One LSTM LM step at a time in numpy, for beam search: per step a (V, 4H) table lookup for the
    input, one (4H, H) mat-vec per layer and one (H, V) output product (projection and tied
    embedding folded into one matrix). torch.lstm costs ~0.5 ms a call at this size, this ~0.05 ms.
    """

    def __init__(self, lm: LSTMLM):
        f = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        lstm, emb = lm.lstm, f(lm.embedding.weight)
        self.layers = lm.config.n_layers
        self.w_ih = [f(getattr(lstm, f"weight_ih_l{k}")) for k in range(self.layers)]
        self.w_hh = [f(getattr(lstm, f"weight_hh_l{k}")) for k in range(self.layers)]
        self.b = [f(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")) for k in range(self.layers)]
        self.table = emb @ self.w_ih[0].T + self.b[0]            # (V, 4H): layer 0's input term per token
        self.w_out = (emb @ f(lm.proj.weight)).T.copy()          # (H, V)
        self.b_out = emb @ f(lm.proj.bias) + f(lm.bias)
        self.hidden = lm.config.hidden

    def step(self, token: int, state: list | None) -> tuple[list, np.ndarray]:
        """Feed one token; returns the new state ([(h, c)] per layer) and next-token log-probs (V,)."""
        new_state = []
        x = None
        for k in range(self.layers):
            h, c = state[k] if state else (np.zeros(self.hidden, np.float32), np.zeros(self.hidden, np.float32))
            g = (self.table[token] if k == 0 else self.w_ih[k] @ x + self.b[k]) + self.w_hh[k] @ h
            n = self.hidden
            i, f, gg, o = g[:n], g[n:2 * n], g[2 * n:3 * n], g[3 * n:]      # PyTorch's gate order
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
            x = h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
        logits = x @ self.w_out + self.b_out
        m = logits.max()
        return new_state, logits - (m + np.log(np.exp(logits - m).sum()))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class FusionLM:
    """Adapter for torchaudio's `ctc_decoder(lm=...)`: scores each emitted token with the LSTM LM
    (natural-log probabilities; the decoder multiplies them by `lm_weight`). `token_bonus` is added
    to every token's score: flashlight's lexicon-free search has no per-token insertion bonus of
    its own, so `BeamSearchDecoder` passes word_score / lm_weight here.

    Scoring token t after a prefix needs only the prefix's next-token distribution, so a new
    child state is created without running the LSTM; its own LSTM step runs only if the beam
    later extends it (most candidates are pruned first).
    """

    def __new__(cls, lm: LSTMLM, token_bonus: float = 0.0):
        from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

        class _Fusion(CTCDecoderLM):
            def __init__(self, model: LSTMLM):
                CTCDecoderLM.__init__(self)
                self.stepper = LSTMStepper(model.eval())
                self.bonus = token_bonus
                self.ready: dict = {}     # state -> (lstm state, next-token log-probs)
                self.pending: dict = {}   # state -> (parent state, token) not run through the LSTM yet

            def _advance(self, token: int, lstm_state):
                new_state, logp = self.stepper.step(token, lstm_state)
                return new_state, logp.tolist()

            def _resolve(self, state):
                if state not in self.ready:
                    parent, token = self.pending.pop(state)
                    self.ready[state] = self._advance(token, self._resolve(parent)[0])
                return self.ready[state]

            def start(self, start_with_nothing: bool):
                self.ready.clear()
                self.pending.clear()
                root = CTCDecoderLMState()
                self.ready[root] = self._advance(BOS, None)
                return root

            def score(self, state, usr_token_idx: int):     # called for every candidate: kept lean
                child = state.child(usr_token_idx)
                entry = self.ready.get(state)
                if entry is None:
                    entry = self._resolve(state)
                if child not in self.ready:
                    self.pending.setdefault(child, (state, usr_token_idx))
                return child, entry[1][usr_token_idx] + self.bonus

            def finish(self, state):
                return state, self._resolve(state)[1][EOS]

        return _Fusion(lm)
