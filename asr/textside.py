"""The text side of training: joint LM loss and LM-to-CTC distillation for a model whose CTC
output layer shares its token embedding matrix with an LSTM LM (``share_embedding``).

- Joint learning: ``L = L_ctc + alpha * L_lm``, where L_lm is the next-token loss of the shared
  LM on the batch's transcripts and on extra text-only sentences. Shared between the two: the
  token embedding matrix (the CTC output rows). The LSTM and its projection belong to the LM only.
- Transfer: the shared LM (embeddings and LSTM) starts from a pretrained LM file, and
  ``lambda * L_kd`` pulls the acoustic model toward that (frozen) teacher: at the frame where the
  Viterbi (forced) CTC alignment places each reference token, the CTC posterior over non-blank
  tokens, renormalised, is matched to the teacher's next-token distribution given the previous
  reference tokens, by KL(teacher || CTC). This follows soft-label distillation from a language
  model to an ASR model (Bai et al., "Learn Spelling from Teachers: Transferring Knowledge from
  Language Models to Sequence-to-Sequence Speech Recognition", Interspeech 2019; Futami et al.,
  "Distilling the Knowledge of BERT for Sequence-to-Sequence ASR", Interspeech 2020), applied
  along the best CTC path instead of decoder steps.
"""

from __future__ import annotations

import random

import torch
import torchaudio.functional as AF

from .lm import LSTMLM, lm_batch, lm_loss


def joint_lm_loss(model, batch: dict, text_pool: list[list[int]], sentences: int, rng: random.Random,
                  device) -> tuple[torch.Tensor, int]:
    """Summed LM loss over the batch transcripts plus `sentences` text-only lines, and the token count."""
    seqs = [t[:n].tolist() for t, n in zip(batch["targets"], batch["target_lengths"])]
    if text_pool:
        seqs += [text_pool[rng.randrange(len(text_pool))] for _ in range(sentences)]
    return lm_loss(model.lm, [s for s in seqs if s], device)


def distill_loss(log_probs: torch.Tensor, out_lengths: torch.Tensor, batch: dict, teacher: LSTMLM,
                 device) -> tuple[torch.Tensor, int]:
    """Summed KL(teacher || CTC non-blank posterior) at each reference token's aligned frame."""
    seqs = [t[:n].tolist() for t, n in zip(batch["targets"], batch["target_lengths"])]
    with torch.no_grad():
        inputs, _, _ = lm_batch(seqs)
        teacher_logits, _ = teacher(inputs.to(device), None)
        teacher_lp = teacher_logits[..., 1:].float().log_softmax(-1)      # (B, U+1, V-1), no blank
    total, count = log_probs.new_zeros(()), 0
    for b, seq in enumerate(seqs):
        t = int(out_lengths[b])
        if not seq or len(seq) > t:
            continue
        with torch.no_grad():
            ali, _ = AF.forced_align(log_probs[b:b + 1, :t].detach().float().cpu(),
                                     torch.tensor([seq], dtype=torch.int32), blank=0)
            spans = AF.merge_tokens(ali[0], torch.zeros(t))
        frames = torch.tensor([s.start for s in spans], device=log_probs.device)
        student = log_probs[b, frames, 1:]
        student = student - student.logsumexp(-1, keepdim=True)
        p_t = teacher_lp[b, : len(seq)].exp()
        total = total + (p_t * (teacher_lp[b, : len(seq)] - student)).sum()
        count += len(seq)
    return total, count
