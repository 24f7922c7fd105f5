"""Checkpoints: one file holds the model config, weights, tokenizer and (for training) the state
needed to resume. Written atomically; loaded with ``weights_only=True`` so a file can never run
code; averaged over the last K for the final model.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .io import atomic_write
from .model import CTCModel, ModelConfig
from .tokenizer import Tokenizer

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file that is missing, corrupt, unsafe or not an `asr` model."""


def save_checkpoint(path: str | Path, model: CTCModel, tokenizer: Tokenizer, **extra) -> None:
    """Write ``{format, model_config, model, tokenizer, **extra}`` atomically."""
    state = {
        "format": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "tokenizer": tokenizer.to_dict(),
        **extra,
    }
    write_checkpoint(path, state)


def write_checkpoint(path: str | Path, state: dict) -> None:
    """Write an assembled checkpoint dict atomically (the old file survives a crash or full disk)."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint dict safely; raise `CheckpointError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        reason = str(e).strip().split("\n")[0][:200]
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "refused: the file holds Python objects that could run code on load"
        raise CheckpointError(f"{path}: cannot load checkpoint ({reason})") from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise CheckpointError(f"{path}: not an asr checkpoint")
    return state


def model_from_checkpoint(state: dict) -> tuple[CTCModel, Tokenizer]:
    """Rebuild the model and tokenizer from a checkpoint dict alone."""
    model = CTCModel(ModelConfig.from_dict(state["model_config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not match its config ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, Tokenizer.from_dict(state["tokenizer"])


def average_checkpoints(paths: list[str | Path], weights: list[float] | None = None,
                        modules: list[str] | None = None) -> dict:
    """Element-wise (weighted) mean of the model weights of several checkpoints (float tensors only).

    With `weights` it interpolates models fine-tuned from one another, e.g. a model and the one it
    started from (weight-space ensembling, as in WiSE-FT); they are normalised to sum to 1. With
    `modules` (parameter name prefixes such as "encoder") only those parameters are mixed and the
    rest are the last checkpoint's. The checkpoints must share their config and tokenizer; the
    rest of the state is the last one's."""
    if weights is not None and (len(weights) != len(paths) or any(w < 0 for w in weights) or sum(weights) <= 0):
        raise ValueError(f"need one weight >= 0 per checkpoint ({len(paths)}), not all zero; got {weights}")
    w = [x / sum(weights) for x in weights] if weights is not None else [1 / len(paths)] * len(paths)
    states = [load_checkpoint(p) for p in paths]
    for p, s in zip(paths, states):
        if s["model_config"] != states[-1]["model_config"] or s.get("tokenizer") != states[-1].get("tokenizer"):
            raise CheckpointError(f"{p}: another model config or tokenizer than {paths[-1]}; cannot average them")
    avg = dict(states[-1])
    model = {}
    prefixes = tuple(m.rstrip(".") + "." for m in modules or [])
    if prefixes and not any(k.startswith(prefixes) for k in states[-1]["model"]):
        raise ValueError(f"no parameter of {paths[-1]} is under {', '.join(modules)}")
    for k, v in states[-1]["model"].items():
        if v.is_floating_point() and (not prefixes or k.startswith(prefixes)):
            model[k] = sum(wi * s["model"][k].double() for wi, s in zip(w, states)).to(v.dtype)
        else:
            model[k] = v
    avg["model"] = model
    for key in ("optimizer", "scheduler", "scaler", "rng", "sampler"):
        avg.pop(key, None)
    return avg


def step_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``checkpoint-<step>.pt`` files in `exp_dir`, oldest first."""
    found = []
    for p in Path(exp_dir).glob("checkpoint-*.pt"):
        m = re.fullmatch(r"checkpoint-(\d+)\.pt", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]
