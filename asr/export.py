"""Export the acoustic model (log-mel features -> CTC log-probs) to ONNX or TorchScript.

The exported graph takes ``feats`` (B, T, 80) float32 log-mel features (as `asr.features.LogMel`
computes them) and ``lengths`` (B,) int64, and returns ``log_probs`` (B, T', V) and ``out_lengths``.
Normalisation is inside the graph; the tokenizer is written beside it as ``<file>.tokens.json``
(pieces in id order, blank = 0) so a runtime can decode without `asr`. `OnnxEncoder` runs such a
file inside `asr` itself (``--runtime onnx``, or ``onnx-int8`` with int8 weights; ``onnx`` is
faster than PyTorch eager on one CPU thread, see BENCHMARKS.md); `cached_onnx` makes it once per
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .io import atomic_write


class _LogProbs(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        logits, out_lengths = self.model(feats, lengths)
        return logits.log_softmax(-1), out_lengths


def export_model(model_path: str | Path, output: str | Path, fmt: str = "onnx", quantize: bool = False) -> Path:
    """Write `output` (and the tokens sidecar); returns the path of the exported model."""
    model, tokenizer = model_from_checkpoint(load_checkpoint(model_path))
    model.eval()
    wrapper = _LogProbs(model).eval()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    feats, lengths = torch.randn(2, 300, model.config.n_mels), torch.tensor([300, 200])
    if fmt == "torchscript":
        if quantize:
            wrapper = torch.ao.quantization.quantize_dynamic(wrapper, {torch.nn.Linear}, dtype=torch.qint8)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, (feats, lengths), check_trace=False)
        with atomic_write(output, "wb") as f:
            torch.jit.save(traced, f)
    elif fmt == "onnx":
        tmp = output.with_suffix(".tmp.onnx")
        torch.onnx.export(wrapper, (feats, lengths), str(tmp), input_names=["feats", "lengths"],
                          output_names=["log_probs", "out_lengths"], dynamo=False, opset_version=17,
                          dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                        "log_probs": {0: "batch", 1: "out_frames"}, "out_lengths": {0: "batch"}})
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            quantize_dynamic(str(tmp), str(output), weight_type=QuantType.QInt8)
            tmp.unlink()
        else:
            tmp.replace(output)
    else:
        raise ValueError(f"export format must be onnx or torchscript, not {fmt!r}")
    with atomic_write(Path(str(output) + ".tokens.json")) as f:
        json.dump({"pieces": tokenizer.pieces, "blank": 0, "kind": tokenizer.kind,
                   "subsampling": model.config.subsampling}, f)
    return output


def cache_dir() -> Path:
    """Where `asr` keeps files it derives from models: $ASR_CACHE_DIR, else $XDG_CACHE_HOME/asr,
    else ~/.cache/asr."""
    if os.environ.get("ASR_CACHE_DIR"):
        return Path(os.environ["ASR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr"


def cached_onnx(model_path: str | Path, quantize: bool = False) -> Path:
    """The ONNX export of a checkpoint (int8 weights with `quantize`), made once and kept in
    `cache_dir()` under the checkpoint's content hash (a changed checkpoint gets a new export)."""
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:20]
    path = cache_dir() / "onnx" / f"{digest}-v{ONNX_CACHE_VERSION}{'-int8' if quantize else ''}.onnx"
    if not path.exists():
        with warnings.catch_warnings():     # tracer warnings are about the trace, not the user's input
            warnings.simplefilter("ignore")
            export_model(model_path, path, "onnx", quantize=quantize)
    return path


ONNX_CACHE_VERSION = 1      # bump when the exported graph changes


class OnnxEncoder:
    """An exported model run by ONNX Runtime on the CPU, called like `CTCModel`:
    ``(feats (B, T, 80), lengths (B,)) -> (log_probs (B, T', V), out_lengths (B,))``."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the onnx runtime needs onnxruntime: pip install 'asr[export]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0          # 0: onnxruntime's default (all cores)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, out_lengths = self.session.run(None, {"feats": feats.cpu().float().numpy(),
                                                         "lengths": lengths.cpu().long().numpy()})
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)
