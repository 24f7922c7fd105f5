"""Inference: load a model file, transcribe audio files, evaluate a manifest.

    import asr
    model = asr.load_model()                 # the shipped default model
    print(model.transcribe("speech.wav").text)
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import torch

from .align import Word, align_tokens, spans_to_words
from .audio import SAMPLE_RATE, AudioError, load_audio, stream_audio
from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import load_utterance
from .decode import LM_DEFAULTS, DecodingOptions, DecodingResult, make_decoder
from .lm import load_lm
from .ngram import is_ngram_path, load_ngram
from .features import HOP_LENGTH, make_logmel
from .manifest import read_manifest
from .metrics import WERResult, score, summary_line, write_report
from .model import CTCModel
from .text import normalize_text
from .tokenizer import Tokenizer


def default_model_path() -> Path:
    """The model shipped inside the package (works for editable and regular installs)."""
    return Path(__file__).resolve().parent / "pretrained" / "default.pt"


@dataclass
class Transcript:
    path: str
    text: str
    duration: float
    words: list[Word] = field(default_factory=list)   # start/end from CTC forced alignment
    processing_time: float = 0.0
    tokens: list[tuple[str, float, float]] = field(default_factory=list)   # (piece, start, end), from `align`

    def to_dict(self) -> dict:
        return {"path": self.path, "text": self.text, "duration": round(self.duration, 3),
                "words": [w.to_dict() for w in self.words]}


def _glibc_trim():
    try:
        libc = ctypes.CDLL(None)      # symbols already loaded in this process (no library search at start-up)
    except (OSError, TypeError):      # Windows has no such handle
        return None
    return getattr(libc, "malloc_trim", None)     # glibc's; other C libraries lack it


_malloc_trim = _glibc_trim()


def release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc; elsewhere a no-op). Chunk after chunk of
    differently sized tensors otherwise fragments the heap, and a long file's peak RSS grows with
    its length (BENCHMARKS.md, the 60-minute file)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads (None leaves torch's default). One thread is often fastest for
    small models on a shared CPU."""
    if threads:
        torch.set_num_threads(threads)


RUNTIMES = ("torch", "onnx", "onnx-int8")


class Recognizer:
    """A loaded model + tokenizer + decoding options."""

    def __init__(self, model: CTCModel, tokenizer: Tokenizer, options: DecodingOptions | None = None,
                 lm=None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.encoder = self.model       # or an `OnnxEncoder` (same call), see `from_file(runtime=...)`
        self.tokenizer, self.options, self.lm = tokenizer, options or DecodingOptions(), lm
        self.decoder = make_decoder(tokenizer, self.options, lm)
        self.logmel = make_logmel(model.config.frontend)
        self.frame_seconds = HOP_LENGTH * model.config.subsampling / SAMPLE_RATE

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, device: str = "auto", runtime: str = "torch",
                  threads: int | None = None, **kwargs) -> "Recognizer":
        """`runtime`: "torch", "onnx" (ONNX Runtime on the CPU with `threads` threads; the
        checkpoint is exported once into `asr.export.cache_dir()`) or "onnx-int8" (the same with
        int8 weights in the linear layers)."""
        path = Path(path) if path else default_model_path()
        if path.is_dir():
            path = path / "model.pt"
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        model, tokenizer = model_from_checkpoint(load_checkpoint(path))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and runtime == "torch" else "cpu"
        rec = cls(model, tokenizer, device=device, **kwargs)
        if runtime != "torch":
            from .export import OnnxEncoder, cached_onnx
            rec.encoder = OnnxEncoder(cached_onnx(path, quantize=runtime == "onnx-int8"), threads)
        return rec

    @torch.inference_mode()
    def log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """(T', V) CTC log-probabilities of one mono 16 kHz waveform."""
        feats = self.logmel(wav)
        logits, _ = self.encoder(feats[None].to(self.device), torch.tensor([feats.shape[0]], device=self.device))
        return logits[0].float().log_softmax(-1).cpu()

    def recognize(self, wav: torch.Tensor) -> DecodingResult:
        """Decode one mono 16 kHz waveform (1-D tensor)."""
        if wav.numel() == 0:
            return DecodingResult("", [])
        lp = self.log_probs(wav)
        return self.decoder(lp[None], torch.tensor([lp.shape[0]]))[0]

    def transcribe(self, path: str | os.PathLike, words: bool = True) -> Transcript:
        """Transcribe one file of any length (read in chunks cut at quiet points); with `words`,
        word times and confidences come from forced alignment of the decoded tokens."""
        return self.transcribe_chunks(stream_audio(path), str(path), words)

    def transcribe_chunks(self, chunks: Iterable[tuple[float, torch.Tensor]], name: str = "",
                          words: bool = True) -> Transcript:
        """Transcribe ``(offset_seconds, waveform)`` pieces of one recording."""
        start = time.perf_counter()
        texts, word_list, duration = [], [], 0.0
        for offset, chunk in chunks:
            lp = self.log_probs(chunk)
            result = self.decoder(lp[None], torch.tensor([lp.shape[0]]))[0]
            if result.text:
                texts.append(result.text)
            if words:
                word_list += spans_to_words(align_tokens(lp, result.tokens), self.tokenizer, self.frame_seconds, offset)
            duration = offset + chunk.numel() / SAMPLE_RATE
            release_freed_memory()
        return Transcript(name, " ".join(texts), duration, word_list, time.perf_counter() - start)

    def align(self, path: str | os.PathLike, text: str) -> Transcript:
        """Force-align a known transcript to a whole file (held in memory: meant for utterances
        and files of a few minutes)."""
        start = time.perf_counter()
        wav = load_audio(path)
        normalized = normalize_text(text)
        tokens = self.tokenizer.encode(normalized)
        lp = self.log_probs(wav)
        if len(tokens) > lp.shape[0]:
            raise ValueError(f"{path}: the transcript has more tokens ({len(tokens)}) than the audio has frames "
                             f"({lp.shape[0]}); is it the right text?")
        spans = align_tokens(lp, tokens)
        word_list = spans_to_words(spans, self.tokenizer, self.frame_seconds)
        token_times = [(self.tokenizer.pieces[sp.token], sp.start * self.frame_seconds, sp.end * self.frame_seconds)
                       for sp in spans]
        return Transcript(str(path), normalized, wav.numel() / SAMPLE_RATE, word_list, time.perf_counter() - start,
                          token_times)

    def transcribe_many(self, paths: Iterable[str | os.PathLike],
                        on_error: Callable[[str, str], None] | None = None) -> Iterable[Transcript]:
        """Yield a transcript per readable file; unreadable ones go to `on_error(path, reason)`."""
        for p in paths:
            try:
                yield self.transcribe(p)
            except AudioError as e:
                if on_error is None:
                    raise
                on_error(str(p), str(e))


def default_lm_path() -> Path:
    """The LM shipped with the default model: the word n-gram, else the LSTM."""
    ngram = default_model_path().with_name("default-lm.arpa.gz")
    return ngram if ngram.is_file() else default_model_path().with_name("default-lm.pt")


def load_model(path: str | os.PathLike | None = None, device: str = "auto", beam_size: int = 1,
               threads: int | None = None, lm: str | os.PathLike | None = None, runtime: str = "torch",
               **options) -> Recognizer:
    """Load a model file (default: the shipped model) ready to transcribe.

    `lm`: a language model file for shallow fusion ("default" = the one shipped with the default
    model): an LSTM LM (`asr lm train`) or a word n-gram (.arpa / .arpa.gz, `asr lm ngram`). It
    implies beam search; beam size, lm_weight, word_score (and, for the n-gram, beam_size_token)
    not given (or None) take that kind of LM's tuned values (`asr.decode.LM_DEFAULTS`). Other
    keyword arguments are `DecodingOptions` fields (beam_threshold, blank_skip_threshold).
    `runtime="onnx"` (or "onnx-int8") runs the acoustic model with ONNX Runtime on the CPU (needs
    ``asr[export]``).
    """
    set_threads(threads)
    options = {k: v for k, v in options.items() if v is not None}
    lm_model, lm_tok = None, None
    if lm is not None:
        lm_path = default_lm_path() if str(lm) == "default" else Path(lm)
        if is_ngram_path(lm_path):
            lm_model, kind = load_ngram(lm_path), "ngram"
        else:
            (lm_model, lm_tok), kind = load_lm(lm_path), "lstm"
        defaults = LM_DEFAULTS[kind]
        beam_size = beam_size if beam_size and beam_size > 1 else defaults["beam_size"]
        options = {**{k: v for k, v in defaults.items() if k != "beam_size"}, **options}
    rec = Recognizer.from_file(path, device=device, runtime=runtime, threads=threads,
                               options=DecodingOptions(beam_size=beam_size or 1, **options), lm=lm_model)
    if lm_tok is not None and lm_tok.pieces != rec.tokenizer.pieces:
        raise ValueError(f"{lm}: the LM's vocabulary differs from the acoustic model's")
    return rec


def transcribe(path: str | os.PathLike, model: str | os.PathLike | None = None, **kwargs) -> Transcript:
    """One-call transcription with the default (or given) model."""
    return load_model(model, **kwargs).transcribe(path)


@dataclass
class Evaluation:
    result: WERResult
    rtf: float
    audio_seconds: float
    failures: list[str]

    def summary(self) -> str:
        return summary_line(self.result, self.rtf)


def utterance_chunks(utt) -> Iterable[tuple[float, torch.Tensor]]:
    """A manifest entry's audio as ``(offset, waveform)`` pieces: a segment of a longer recording
    whole, a file in 30-second chunks cut at quiet points (as `Recognizer.transcribe` reads it)."""
    return [(0.0, load_utterance(utt))] if "offset" in utt.extra else stream_audio(utt.audio_filepath)


def evaluate(manifest: str | os.PathLike, recognizer: Recognizer, report_dir: str | os.PathLike | None = None,
             progress: bool = True) -> Evaluation:
    """WER of `recognizer` on a manifest; RTF = processing time / audio time (loading excluded)."""
    from tqdm import tqdm

    utts = read_manifest(manifest)
    refs, hyps, ids, failures = [], [], [], []
    busy, audio = 0.0, 0.0
    for utt in tqdm(utts, desc="evaluate", unit="utt", disable=not progress):
        try:
            tr = recognizer.transcribe_chunks(utterance_chunks(utt), utt.audio_filepath, words=False)
        except AudioError as e:
            failures.append(str(e))
            continue
        busy += tr.processing_time
        audio += tr.duration
        refs.append(utt.text)
        hyps.append(tr.text)
        ids.append(utt.id)
    result = score(refs, hyps, ids)
    ev = Evaluation(result, busy / audio if audio else 0.0, audio, failures)
    if report_dir is not None:
        name = Path(manifest).stem
        write_report(result, report_dir, name, extra=f"audio_seconds {audio:.1f}\nrtf {ev.rtf:.4f}\n"
                     + "".join(f"failed {f}\n" for f in failures))
    return ev


def tune_lm(manifest: str | os.PathLike, lm: str | os.PathLike, weights: Iterable[float], word_scores: Iterable[float],
            model: str | os.PathLike | None = None, beam_size: int = 0, threads: int | None = 1,
            progress: bool = True) -> list[tuple[float, float, WERResult]]:
    """WER on `manifest` for every (lm_weight, word_score) pair. The acoustic model runs once per
    utterance (chunked as in `evaluate`) and an n-gram's lexicon trie is built once; only the beam
    search is repeated per pair."""
    from tqdm import tqdm

    base = load_model(model, device="cpu", beam_size=beam_size, threads=threads, lm=lm)
    refs, ids, utt_lps = [], [], []
    for utt in tqdm(read_manifest(manifest), desc="log-probs", unit="utt", disable=not progress):
        try:
            utt_lps.append([base.log_probs(wav) for _, wav in utterance_chunks(utt)])
        except AudioError:
            continue
        refs.append(utt.text)
        ids.append(utt.id)
    rows = []
    for w in weights:
        for b in word_scores:
            decoder = base.decoder.with_options(replace(base.options, lm_weight=w, word_score=b))
            hyps = [" ".join(r.text for lp in lps for r in decoder(lp[None], torch.tensor([lp.shape[0]])) if r.text)
                    for lps in utt_lps]
            rows.append((w, b, score(refs, hyps, ids)))
    return rows
