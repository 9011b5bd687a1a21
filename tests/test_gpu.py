"""The GPU path: half precision and a batch size chosen for the card.

Tests marked ``gpu`` need a CUDA GPU and are skipped, with the reason, where there is
none; the others check the rules on any machine.
"""

from __future__ import annotations

import pytest

from _support import SAMPLES, wer


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="no CUDA GPU here (torch.cuda.is_available() "
                                                     "is False): the GPU path is not exercised")


def test_auto_precision_is_half_on_a_gpu_only():
    from earmark.decode.precision import resolve_precision

    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("none", "cuda") == "float32"
    assert resolve_precision("auto", "cpu") in ("bf16", "float32")


def test_the_card_batch_grows_with_memory_and_is_bounded():
    from earmark.decode.gpu import MAX_GPU_BATCH, card_batch_size

    tiny = dict(n_text_layer=4, n_audio_state=384)
    small_card, big_card = card_batch_size(2 << 30, **tiny), card_batch_size(80 << 30, **tiny)
    assert 16 <= small_card < big_card == MAX_GPU_BATCH
    assert card_batch_size(1 << 20, **tiny) == 16  # never below the CPU default
    # a wider, deeper model holds more per window: fewer windows on the same card
    assert card_batch_size(8 << 30, n_text_layer=32, n_audio_state=1280) < card_batch_size(8 << 30, **tiny)


def test_a_cpu_model_keeps_its_batch(tiny_model):
    from earmark.config import DecodeConfig
    from earmark.decode.gpu import for_device

    cfg = DecodeConfig(batch_size=7)
    assert for_device(cfg, tiny_model) is cfg


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_ranking_on_a_gpu_in_half_precision_reads_as_the_cpu_does(tmp_path):
    """rank --device cuda: fp16 decoding, a card-sized batch, a WER like the CPU's."""
    import time

    from sqlalchemy import select

    from earmark.config import DecodeConfig
    from earmark.decode.decoder import Decoder
    from earmark.decode.gpu import for_device
    from earmark.ingest import import_audio
    from earmark.models.loading import load_model
    from earmark.ranking.rank import rank
    from earmark.store.db import Clip, Transcript
    from earmark.store.project import init_project

    model = load_model("tiny.en", "cuda")
    decoder = Decoder(model, for_device(DecodeConfig(device="cuda"), model))
    assert decoder.precision == "fp16" and decoder.cfg.batch_size >= 16
    project = init_project(tmp_path / "proj")
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    start = time.perf_counter()
    report = rank(project, decode=DecodeConfig(device="cuda"), progress=False)
    assert report.transcribed >= 31 and time.perf_counter() - start < 120
    with project.store.session() as s:
        rows = s.execute(select(Clip.reference_text, Transcript.text)
                         .join(Transcript, Transcript.clip_id == Clip.id)).all()
    # tiny.en on these synthetic drug names: about 0.3 on the CPU
    assert wer(" ".join(r for r, _ in rows), " ".join(t for _, t in rows)) < 0.5
