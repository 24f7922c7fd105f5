"""Training: CTC loss, AdamW with warmup and cosine decay, checkpoints, resume, averaging, DDP.

Read it top to bottom: `TrainConfig` -> `train()` (set-up) -> `train_one_epoch()` ->
`compute_loss()`; `validate()` gives loss and greedy WER. The same function runs as one process
or under ``torchrun --nproc_per_node N`` (DistributedDataParallel: gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import model as model_lib
from .augment import AugmentConfig
from .checkpoint import (average_checkpoints, load_checkpoint, model_from_checkpoint, save_checkpoint,
                         step_checkpoints, write_checkpoint)
from .data import DurationBatchSampler, SpeechDataset, collate, validate_utterances
from .decode import greedy_decode
from .features import FRAMES_PER_SECOND, SpecAugment, SpecAugmentConfig
from .distributed import Dist, agree, check_in_sync, pick_device, setup_distributed
from .io import atomic_write
from .lm import load_lm, read_text
from .manifest import ManifestError, Utterance, read_manifest
from .metrics import score
from .text import normalize_text
from .textside import distill_loss, joint_lm_loss
from .tokenizer import Tokenizer, train_tokenizer

MAX_BAD_STEPS = 20   # consecutive non-finite losses before the run stops


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss keeps diverging); the message says what to change."""


@dataclass
class TrainConfig:
    train_manifest: str = ""
    valid_manifest: str = ""
    exp_dir: str = "exp/run"
    preset: str = "small"
    model_overrides: dict = field(default_factory=dict)
    tokenizer: str = "bpe"           # bpe | char
    vocab_size: int = 256
    init_from: str = ""              # start from this checkpoint's weights and tokenizer
    new_head: bool = False           # with init_from: a new tokenizer (tokenizer, vocab_size) and CTC head;
                                     # rows of pieces both vocabularies share are carried over
    pretrained_encoder: str = ""     # whisper_tiny preset: a CTranslate2 Whisper dir, or "bundled"
    encoder_lr_scale: float = 1.0    # the encoder's LR = lr * this (e.g. 0.1 for a pretrained encoder)
    encoder_anchor: str = ""         # L2-SP: pull the encoder's learning weights towards this checkpoint's encoder
    encoder_anchor_decay: float = 0.0    # each step: w -= encoder LR * this * (w - w_anchor) (decoupled, as AdamW's decay)
    freeze_encoder: bool = False     # keep the (pretrained) encoder fixed; adapter and head learn
    encoder_trainable_top: int = 0   # frozen encoder: its top N blocks (and final norm) learn all the same
    encoder_cache_copies: int = 0    # frozen encoder: run it once on this many augmented copies, train on its output
    encoder_cache_dir: str = ""      # where that cache lives ("" = EXP_DIR/encoder-cache)
    epochs: int = 10
    max_steps: int = 0               # 0 = epochs decide
    max_minutes: float = 0.0         # stop (with a checkpoint) after this much wall time; 0 = none
    batch_seconds: float = 120.0     # audio seconds per batch per process
    max_duration: float = 30.0       # longer training utterances are left out
    lr: float = 2e-3
    warmup_steps: int = 500
    final_lr_ratio: float = 0.05
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    augment: bool = True
    augment_overrides: dict = field(default_factory=dict)  # AugmentConfig fields, e.g. {p_reverb: 0.6}
    augment_ramp_steps: int = 1000   # waveform augmentation ramps in over these steps
    specaugment: bool = True
    specaugment_start_step: int = 0  # SpecAugment joins at this step (let the model align first)
    sortagrad_epochs: int = 1        # first epoch goes from short to long utterances (not with init_from)
    cmvn_utterances: int = 500
    # Text side (needs model_overrides: {share_embedding: true}); see asr/textside.py.
    joint_lm_weight: float = 0.0     # alpha: L = L_ctc + alpha * L_lm (transcripts + lm_text)
    lm_text: str = ""                # text-only sentences for the joint LM loss
    lm_text_sentences: int = 32      # text-only sentences per step
    init_lm: str = ""                # transfer: start the shared LM (embeddings + LSTM) from this LM file
    distill_weight: float = 0.0      # lambda: KL from the init_lm teacher along the best CTC path
    freeze_embedding: bool = False   # keep the shared token embeddings fixed
    seed: int = 0
    skip_bad: bool = False           # drop bad manifest entries (reported) instead of stopping
    checkpoint_every: int = 500
    keep_last: int = 5
    average_last: int = 3
    valid_every_epochs: int = 1
    valid_every_steps: int = 0       # also validate every N steps (0 = epochs only)
    log_every: int = 10              # steps between rows of train.csv
    threads: int = 0                 # torch threads per process; 0 = torch's default
    num_workers: int = 0
    log: str = "csv"                 # csv | tensorboard
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        return cls(**d)

    def with_overrides(self, items: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (``a.b=value`` sets a key inside a dict field); values are
        parsed as YAML scalars/collections (numbers, booleans, lists, dicts) when they can be."""
        import yaml

        d = asdict(self)
        for item in items:
            key, sep, value = item.partition("=")
            top, _, sub = key.partition(".")
            if not sep or top not in d or (sub and not isinstance(d[top], dict)):
                raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(d)}")
            parsed = yaml.safe_load(value) if value else ""
            if sub:
                d[top] = {**d[top], sub: parsed}
            else:
                d[top] = parsed
        return TrainConfig.from_dict(d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: cannot read config ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping of TrainConfig fields")
        return cls.from_dict({**asdict(cls()), **data})

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(asdict(self), sort_keys=False)


def lr_at(step: int, cfg: TrainConfig, total_steps: int, minutes: float = 0.0) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * final_lr_ratio at total_steps.

    With a wall-time budget (max_minutes) the decay follows whichever of steps and time runs out
    first, so a time-boxed run still ends at the low learning rate.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    if cfg.max_minutes:
        progress = max(progress, min(1.0, minutes / cfg.max_minutes))
    floor = cfg.lr * cfg.final_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def compute_loss(model, batch: dict, device: torch.device, outputs: dict | None = None) -> tuple[torch.Tensor, int]:
    """Summed CTC loss of the batch and its utterance count (infinite losses are zeroed).
    When `outputs` is a dict, the log-probs and output lengths are left in it."""
    feats, lengths = batch["feats"].to(device), batch["lengths"].to(device)
    logits, out_lengths = model(feats, lengths, encoded=batch.get("encoded", False))
    log_probs = logits.float().log_softmax(-1)
    loss = F.ctc_loss(log_probs.transpose(0, 1), batch["targets"].to(device), out_lengths,
                      batch["target_lengths"].to(device), blank=0, reduction="sum", zero_infinity=True)
    if outputs is not None:
        outputs.update(log_probs=log_probs, out_lengths=out_lengths)
    return loss, feats.shape[0]


def text_side_loss(run: "_Run", batch: dict, outputs: dict, step: int) -> tuple[torch.Tensor, dict]:
    """alpha * joint LM loss + lambda * distillation (both per token); zero when both are off."""
    cfg, parts = run.cfg, {}
    total = outputs["log_probs"].new_zeros(())
    if cfg.joint_lm_weight:
        loss, n = joint_lm_loss(run.model, batch, run.text_pool, cfg.lm_text_sentences,
                                random.Random(f"{cfg.seed}-{step}"), run.device)
        parts["lm_loss"] = loss.item() / max(n, 1)
        total = total + cfg.joint_lm_weight * loss / max(n, 1)
    if cfg.distill_weight:
        loss, n = distill_loss(outputs["log_probs"], outputs["out_lengths"], batch, run.teacher, run.device)
        parts["distill_loss"] = loss.item() / max(n, 1)
        total = total + cfg.distill_weight * loss / max(n, 1)
    return total, parts


@torch.no_grad()
def validate(model, loader, tokenizer: Tokenizer, device: torch.device) -> dict:
    """Mean CTC loss per utterance and greedy WER on the validation set."""
    model.eval()
    total, n, refs, hyps = 0.0, 0, [], []
    for batch in loader:
        if not batch["ids"]:
            continue
        loss, count = compute_loss(model, batch, device)
        total, n = total + float(loss), n + count
        logits, out_lengths = model(batch["feats"].to(device), batch["lengths"].to(device))
        hyps += [r.text for r in greedy_decode(logits.float().log_softmax(-1).cpu(), out_lengths.cpu(), tokenizer)]
        refs += batch["texts"]
    model.train()
    return {"valid_loss": total / max(n, 1), "valid_wer": score(refs, hyps).wer if refs else float("nan")}


class Logger:
    """Appends rows to CSV files (and TensorBoard events when asked) in the experiment folder."""

    def __init__(self, exp_dir: Path, kind: str, enabled: bool):
        self.exp_dir, self.enabled, self.tb = exp_dir, enabled, None
        if enabled and kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(exp_dir / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed; logging to CSV only", file=sys.stderr)

    def log(self, name: str, row: dict) -> None:
        if not self.enabled:
            return
        path = self.exp_dir / f"{name}.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{name}/{k}", v, row["step"])


def _prepare_tokenizer(cfg: TrainConfig, texts: list[str], exp_dir: Path, rank: Dist) -> Tokenizer:
    path = exp_dir / "tokenizer.pt"
    if cfg.new_head and not cfg.init_from:
        raise ValueError("new_head needs init_from (the model whose other weights are kept)")
    if cfg.init_from and not cfg.new_head:
        return Tokenizer.from_dict(load_checkpoint(cfg.init_from)["tokenizer"])
    if rank.main and not path.exists():
        tok = train_tokenizer([normalize_text(t) for t in texts], cfg.tokenizer, cfg.vocab_size)
        with atomic_write(path, "wb") as f:
            torch.save(tok.to_dict(), f)
    if rank.world_size > 1:
        dist.barrier()
    return Tokenizer.from_dict(torch.load(path, weights_only=True))


def _checked(utts: list[Utterance], tokenizer: Tokenizer, cfg: TrainConfig, rank: Dist) -> list[Utterance]:
    """Check every entry before training starts; bad ones stop the run, or are dropped with skip_bad."""
    problems = validate_utterances(utts, tokenizer)
    if not problems:
        return utts
    if not cfg.skip_bad:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ManifestError(f"{problems[0]}{more}; fix the manifest or pass --skip-bad")
    if rank.main:
        for p in problems:
            print(f"warning: skipped {p}", file=sys.stderr)
    bad = {p.split(": ", 1)[0] for p in problems}
    return [u for u in utts if (u.source or u.audio_filepath) not in bad]


def _setup_text_side(model: model_lib.CTCModel, cfg: TrainConfig, tokenizer: Tokenizer) -> None:
    """Transfer (load the LM into the shared part) and embedding freezing; checks the config."""
    needs_lm = cfg.joint_lm_weight or cfg.distill_weight or cfg.init_lm or cfg.freeze_embedding
    if needs_lm and not model.config.share_embedding:
        raise ValueError("joint_lm_weight, distill_weight, init_lm and freeze_embedding need a model with "
                         "share_embedding (--set model_overrides.share_embedding=true)")
    if cfg.distill_weight and not cfg.init_lm:
        raise ValueError("distill_weight needs init_lm (the teacher LM)")
    if cfg.init_lm and not cfg.init_from:
        lm, lm_tok = load_lm(cfg.init_lm)
        if lm_tok.pieces != tokenizer.pieces:
            raise ValueError(f"{cfg.init_lm}: the LM's vocabulary differs from the acoustic model's tokenizer")
        if lm.config.to_dict() != model.lm.config.to_dict() | {"dropout": lm.config.dropout}:
            raise ValueError(f"{cfg.init_lm}: LM shape {lm.config} does not match the model's "
                             f"(embed_dim/lm_hidden/lm_layers in model_overrides)")
        model.lm.load_state_dict(lm.state_dict())
    if cfg.freeze_embedding:
        model.lm.embedding.weight.requires_grad_(False)


def _augment_config(cfg: TrainConfig) -> AugmentConfig:
    known = {f.name for f in fields(AugmentConfig)}
    unknown = sorted(set(cfg.augment_overrides) - known)
    if unknown:
        raise ValueError(f"unknown augment_overrides {unknown}; known: {', '.join(sorted(known))}")
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment_overrides.items()})


def _build_model(cfg: TrainConfig, tokenizer: Tokenizer) -> model_lib.CTCModel:
    if cfg.init_from:
        model, old_tok = model_from_checkpoint(load_checkpoint(cfg.init_from))
        if cfg.new_head:
            model_lib.replace_head(model, old_tok.pieces, tokenizer.pieces)   # seeded above, in train()
    else:
        model = _new_model(cfg, tokenizer)
    if cfg.freeze_encoder:
        model.freeze_encoder(cfg.encoder_trainable_top)
    elif cfg.encoder_trainable_top:
        raise ValueError("encoder_trainable_top needs a frozen encoder (freeze_encoder=true)")
    return model


def _new_model(cfg: TrainConfig, tokenizer: Tokenizer) -> model_lib.CTCModel:
    mcfg = model_lib.PRESETS[cfg.preset](vocab_size=tokenizer.vocab_size, **cfg.model_overrides)
    model = model_lib.CTCModel(mcfg)
    if cfg.pretrained_encoder:
        if mcfg.encoder != "whisper":
            raise ValueError("pretrained_encoder needs a whisper encoder (--preset whisper_tiny)")
        from .whisper import whisper_encoder_state
        state, dims = whisper_encoder_state(None if cfg.pretrained_encoder == "bundled" else cfg.pretrained_encoder)
        if any(getattr(mcfg, k) != v for k, v in dims.items()):
            raise ValueError(f"{cfg.pretrained_encoder}: encoder shape {dims} does not match the preset's")
        model.encoder.load_state_dict(state)
    return model


def train_sampler(cfg: TrainConfig, durations: list[float], rank: Dist) -> DurationBatchSampler:
    """This rank's training batches. A run from a trained model (init_from) skips the length
    curriculum: a short run would otherwise end on the longest utterances only."""
    return DurationBatchSampler(durations, cfg.batch_seconds, seed=cfg.seed, rank=rank.rank,
                                world_size=rank.world_size, max_duration=cfg.max_duration,
                                sortagrad_epochs=0 if cfg.init_from else cfg.sortagrad_epochs,
                                augment_ramp_batches=cfg.augment_ramp_steps)


def encoder_anchor(model: model_lib.CTCModel, cfg: TrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, anchor weight) for each learning encoder weight: the L2-SP pull keeps a pretrained
    encoder near where it started (or any checkpoint's encoder) while it adapts."""
    if not cfg.encoder_anchor_decay:
        return []
    if not cfg.encoder_anchor:
        raise ValueError("encoder_anchor_decay needs encoder_anchor (a checkpoint whose encoder the weights are pulled to)")
    ref = {k[len("encoder."):]: v for k, v in load_checkpoint(cfg.encoder_anchor)["model"].items()
           if k.startswith("encoder.")}
    pairs = []
    for name, p in model.encoder.named_parameters():
        if not p.requires_grad:
            continue
        if name not in ref or ref[name].shape != p.shape:
            raise ValueError(f"{cfg.encoder_anchor}: its encoder has no weight {name} of shape {tuple(p.shape)}")
        pairs.append((p, ref[name].to(p.device, p.dtype)))
    return pairs


@torch.no_grad()
def pull_to_anchor(pairs: list[tuple[torch.Tensor, torch.Tensor]], rate: float) -> None:
    for p, ref in pairs:
        p.sub_(p - ref, alpha=rate)


def _param_groups(model: model_lib.CTCModel, cfg: TrainConfig) -> list[dict]:
    """The encoder and the rest (adapter, head, text side), so that a pretrained encoder can learn
    more slowly (encoder_lr_scale); a frozen encoder's weights are in neither."""
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    ids = {id(p) for p in encoder}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": encoder, "name": "encoder", "lr_scale": cfg.encoder_lr_scale},
            {"params": rest, "name": "rest", "lr_scale": 1.0}]


def _load_optimizer(optimizer: torch.optim.Optimizer, model: model_lib.CTCModel, saved: dict) -> None:
    """Load optimizer state, also from checkpoints made before the encoder/rest split (one group
    over all of model.parameters(), in order)."""
    if len(saved["param_groups"]) == len(optimizer.param_groups):
        optimizer.load_state_dict(saved)
        return
    old_index = {id(p): i for i, p in enumerate(model.parameters())}
    state, groups, k = {}, [], 0
    for group in optimizer.param_groups:
        ids = []
        for p in group["params"]:
            if old_index[id(p)] in saved["state"]:
                state[k] = saved["state"][old_index[id(p)]]
            ids.append(k)
            k += 1
        groups.append({**saved["param_groups"][0], "name": group["name"], "lr_scale": group["lr_scale"],
                       "params": ids})
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _set_cmvn(model: model_lib.CTCModel, cfg: TrainConfig, train_set: SpeechDataset) -> None:
    """Global CMVN from a fixed sample of clean training utterances (the same on every rank)."""
    if cfg.init_from or model.config.frontend != "fbank":
        return
    rng = random.Random(cfg.seed)
    sample = rng.sample(range(len(train_set)), min(cfg.cmvn_utterances, len(train_set)))
    examples = [train_set[(i, 0, 0.0)] for i in sample]
    model.cmvn.set_stats([e.feats for e in examples if e is not None])


def train(cfg: TrainConfig) -> Path:
    """Train a CTC model; returns the path of the final (averaged) model checkpoint."""
    augment_cfg = _augment_config(cfg) if cfg.augment else None   # a bad override fails before any work
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    rank = setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    exp_dir = Path(cfg.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if rank.main:
        with atomic_write(exp_dir / "config.yaml") as f:
            f.write(cfg.to_yaml())

    train_utts = read_manifest(cfg.train_manifest, require_duration=True)
    valid_utts = read_manifest(cfg.valid_manifest, require_duration=True) if cfg.valid_manifest else []
    tokenizer = _prepare_tokenizer(cfg, [u.text for u in train_utts], exp_dir, rank)
    train_utts = _checked(train_utts, tokenizer, cfg, rank)
    valid_utts = _checked(valid_utts, tokenizer, cfg, rank)
    torch.manual_seed(cfg.seed)
    model = _build_model(cfg, tokenizer)
    frontend = model.config.frontend
    train_set = SpeechDataset(train_utts, tokenizer, augment_cfg, seed=cfg.seed,
                              frontend=frontend)
    valid_set = SpeechDataset(valid_utts, tokenizer, frontend=frontend)
    _set_cmvn(model, cfg, train_set)
    model = model.to(device)
    anchor = encoder_anchor(model, cfg)
    if cfg.encoder_cache_copies:
        if not model.frozen_encoder:
            raise ValueError("encoder_cache_copies needs a frozen encoder (freeze_encoder=true)")
        from .encoder_cache import cached_dataset
        train_set = cached_dataset(model, train_set, Path(cfg.encoder_cache_dir or exp_dir / "encoder-cache"),
                                   cfg.encoder_cache_copies, cfg.augment_ramp_steps > 0, rank, cfg.batch_seconds, device)

    sampler = train_sampler(cfg, [u.duration for u in train_utts], rank)
    valid_loader = DataLoader(valid_set, collate_fn=collate, num_workers=cfg.num_workers, batch_sampler=DurationBatchSampler(
        [u.duration for u in valid_utts], cfg.batch_seconds, shuffle=False)) if valid_utts else None

    _setup_text_side(model, cfg, tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(sampler)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "bad_steps": 0, "skipped_batches": 0, "minutes": 0.0}

    # Resume from the newest readable checkpoint (a corrupt newest one is reported and skipped).
    for path in reversed(step_checkpoints(exp_dir)):
        try:
            ckpt = load_checkpoint(path, map_location="cpu")
        except Exception as e:
            if rank.main:
                print(f"warning: {e}; trying an older checkpoint", file=sys.stderr)
            continue
        model.load_state_dict(ckpt["model"])
        _load_optimizer(optimizer, model, ckpt["optimizer"])
        state.update(ckpt["train_state"])
        torch.set_rng_state(ckpt["rng"][rank.rank % len(ckpt["rng"])])
        if rank.main:
            print(f"resumed from {path} at step {state['step']}", file=sys.stderr)
        break

    ddp_model = model
    if rank.world_size > 1:
        # With a shared LM that no loss uses, its LSTM gets no gradient: let DDP allow that.
        unused = model.config.share_embedding and not (cfg.joint_lm_weight or cfg.distill_weight)
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)
    logger = Logger(exp_dir, cfg.log, rank.main)
    if rank.main:
        print(f"model: {cfg.preset}, {model.num_params() / 1e6:.2f}M parameters; {len(train_utts)} training "
              f"utterances; {steps_per_epoch} steps/epoch x {rank.world_size} process(es); device {device}",
              file=sys.stderr)

    run = _Run(cfg, model, ddp_model, tokenizer, optimizer, train_set, sampler, valid_loader, total_steps,
               device, rank, logger, exp_dir, start=time.time() - 60 * state["minutes"],  # minutes span resumes
               text_pool=read_text([cfg.lm_text], tokenizer) if cfg.lm_text else [],
               teacher=load_lm(cfg.init_lm)[0].to(device) if cfg.distill_weight else None,
               anchor=anchor)
    stop = False
    while state["epoch"] < cfg.epochs and not stop:
        stop = train_one_epoch(run, state)
        if valid_loader is not None and (stop or state["epoch"] % cfg.valid_every_epochs == 0):
            run.validate(state)
    if not (exp_dir / f"checkpoint-{state['step']}.pt").exists():
        _save(run, state)
    check_in_sync(model, rank)
    final = exp_dir / "model.pt"
    if rank.main:
        paths = step_checkpoints(exp_dir)[-cfg.average_last:]
        write_checkpoint(final, {**average_checkpoints(paths), "averaged": [p.name for p in paths]})
        print(f"final model (average of {len(paths)} checkpoints): {final}", file=sys.stderr)
        try:
            from .plots import plot_training
            plot_training(exp_dir)
        except ValueError:   # matplotlib not installed: the CSV logs are still there
            pass
    if rank.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


@dataclass
class _Run:
    """Everything one training run holds, passed to the epoch loop."""
    cfg: TrainConfig
    model: model_lib.CTCModel
    ddp_model: torch.nn.Module
    tokenizer: Tokenizer
    optimizer: torch.optim.Optimizer
    train_set: SpeechDataset | Dataset   # EncodedDataset with an encoder cache
    sampler: DurationBatchSampler
    valid_loader: DataLoader | None
    total_steps: int
    device: torch.device
    rank: Dist
    logger: Logger
    exp_dir: Path
    start: float
    text_pool: list = field(default_factory=list)
    teacher: torch.nn.Module | None = None
    anchor: list = field(default_factory=list)   # encoder_anchor()'s pairs
    last_valid_step: int = -1

    def minutes(self) -> float:
        return (time.time() - self.start) / 60

    def validate(self, state: dict) -> None:
        """Rank 0 only (the others wait at their next collective)."""
        if not self.rank.main or self.valid_loader is None or self.last_valid_step == state["step"]:
            return
        self.last_valid_step = state["step"]
        metrics = validate(self.model, self.valid_loader, self.tokenizer, self.device)
        self.logger.log("valid", {"step": state["step"], "epoch": state["epoch"], "minutes": round(self.minutes(), 2),
                                  **metrics})
        tqdm.write(f"step {state['step']}: valid loss {metrics['valid_loss']:.3f} "
                   f"WER {100 * metrics['valid_wer']:.2f}%", file=sys.stderr)


class _SkipBatches:
    """The sampler's batches for this epoch, without the first `skip` (already trained on)."""

    def __init__(self, sampler: DurationBatchSampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        for n, keys in enumerate(self.sampler):
            if n >= self.skip:
                yield keys

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


def train_one_epoch(run: _Run, state: dict) -> bool:
    """One pass over this rank's batches (skipping those a resumed run already did); returns
    True when training must stop (max_steps or max_minutes reached)."""
    cfg, model, optimizer = run.cfg, run.model, run.optimizer
    run.sampler.set_epoch(state["epoch"])
    skip = state["batch_in_epoch"]
    # Its own generator, so that making a loader never draws from the global RNG (resumes stay exact).
    loader = DataLoader(run.train_set, batch_sampler=_SkipBatches(run.sampler, skip), collate_fn=collate,
                        num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed + state["epoch"]))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if run.device.type == "cuda" else nullcontext()
    bar = tqdm(total=len(run.sampler), initial=skip, desc=f"epoch {state['epoch']}", disable=not run.rank.main,
               unit="batch", dynamic_ncols=True)
    epoch_start, data_time, audio_seconds = time.time(), 0.0, 0.0
    specaug = SpecAugment()
    encoder_stride = model.config.subsampling // (2 if model.config.adapter_layers else 1)
    if cfg.encoder_cache_copies:   # masks on the encoder's output: as wide a share of its channels
        d, n_mels = model.config.d_model, model.config.n_mels
        specaug = SpecAugment(SpecAugmentConfig(freq_width=round(SpecAugmentConfig.freq_width * d / n_mels)))
    t_data = time.time()
    for batch in loader:
        data_time += time.time() - t_data
        frames = float(batch["lengths"].sum()) * (encoder_stride if batch["encoded"] else 1)
        audio_seconds += frames / FRAMES_PER_SECOND * run.rank.world_size
        lr = lr_at(state["step"], cfg, run.total_steps, run.minutes())
        use_specaug = cfg.specaugment and state["step"] >= cfg.specaugment_start_step
        model.spec_augment = specaug if use_specaug else None
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        outputs: dict = {}
        with amp:
            loss, count = compute_loss(run.ddp_model, batch, run.device, outputs)
            extra, parts = text_side_loss(run, batch, outputs, state["step"]) if count else (0.0, {})
        loss_value = loss.item() / max(count, 1)
        # A non-finite loss on any rank skips the batch on every rank (DDP needs all to step).
        (finite,) = agree([float(math.isfinite(loss_value) and count > 0)], run.rank)
        optimizer.zero_grad(set_to_none=True)
        grad_norm = float("nan")
        if finite:
            (loss / max(count, 1) + extra).backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        if math.isfinite(grad_norm):
            optimizer.step()
            pull_to_anchor(run.anchor, lr * cfg.encoder_lr_scale * cfg.encoder_anchor_decay)
            state["bad_steps"] = 0
        else:
            state["bad_steps"] += 1
            state["skipped_batches"] += 1
            if state["bad_steps"] >= MAX_BAD_STEPS:
                raise TrainingError(f"{MAX_BAD_STEPS} consecutive batches gave a non-finite loss or gradient at "
                                   f"step {state['step']}: lower --lr or check the data")
        state["step"] += 1
        state["batch_in_epoch"] += 1
        state["minutes"] = run.minutes()
        bar.update(1)
        if run.rank.main and state["step"] % cfg.log_every == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
            run.logger.log("train", {
                "step": state["step"], "epoch": state["epoch"], "loss": round(loss_value, 4), "lr": lr,
                "grad_norm": round(grad_norm, 3), "minutes": round(state["minutes"], 3),
                "data_share": round(data_time / max(time.time() - epoch_start, 1e-9), 3),
                "audio_per_second": round(audio_seconds / max(time.time() - epoch_start, 1e-9), 2),
                "skipped_batches": state["skipped_batches"], **{k: round(v, 4) for k, v in parts.items()}})
        if cfg.valid_every_steps and state["step"] % cfg.valid_every_steps == 0:
            run.validate(state)
        if state["step"] % cfg.checkpoint_every == 0:
            _save(run, state)
        # Time limits are per process; agree so that all ranks stop at the same step.
        (stop,) = agree([float(bool(cfg.max_steps and state["step"] >= cfg.max_steps)
                                or bool(cfg.max_minutes and state["minutes"] >= cfg.max_minutes))], run.rank,
                         dist.ReduceOp.MAX if run.rank.world_size > 1 else None)
        if stop:
            bar.close()
            return True
        t_data = time.time()
    bar.close()
    state["epoch"] += 1
    state["batch_in_epoch"] = 0
    _save(run, state)   # epoch-end checkpoint
    return False


def _save(run: _Run, state: dict) -> None:
    """Checkpoint (rank 0 writes; RNG states come from every rank); keep the newest `keep_last`."""
    rank, exp_dir, cfg = run.rank, run.exp_dir, run.cfg
    rng = torch.get_rng_state()
    if rank.world_size > 1:
        gathered = [torch.empty_like(rng) for _ in range(rank.world_size)]
        dist.all_gather(gathered, rng)
    else:
        gathered = [rng]
    if rank.main:
        path = exp_dir / f"checkpoint-{state['step']}.pt"
        save_checkpoint(path, run.model, run.tokenizer, optimizer=run.optimizer.state_dict(), train_state=dict(state),
                        rng=gathered, train_config=asdict(cfg))
        for old in step_checkpoints(exp_dir)[:-cfg.keep_last]:
            old.unlink(missing_ok=True)
    if rank.world_size > 1:
        dist.barrier()
