"""asr: offline-first speech-to-text. The public API:

    asr.load_model(path=None) -> Recognizer     (None = the shipped default model)
    Recognizer.transcribe(path) -> Transcript
    asr.transcribe(path) -> Transcript
    asr.evaluate(manifest, recognizer) -> Evaluation
    asr.train(TrainConfig(...)) -> path of the final model
"""

from .audio import AudioError, load_audio
from .checkpoint import CheckpointError
from .decode import DecodingOptions, DecodingResult
from .inference import Evaluation, Recognizer, Transcript, evaluate, load_model, transcribe
from .manifest import ManifestError, Utterance, read_manifest, write_manifest
from .model import CTCModel, ModelConfig
from .text import normalize_text
from .trainer import TrainConfig, train

__all__ = [
    "AudioError", "CheckpointError", "CTCModel", "DecodingOptions", "DecodingResult", "Evaluation",
    "ManifestError", "ModelConfig", "Recognizer", "TrainConfig", "Transcript", "Utterance", "evaluate",
    "load_audio", "load_model", "normalize_text", "read_manifest", "train", "transcribe", "write_manifest",
]
__version__ = "0.1.0"
