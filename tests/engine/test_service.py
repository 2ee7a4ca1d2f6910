"""EngineService: what the app's engine thread and the CLI run. Real tiny model, real files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from desktop.core.cancel import CancelToken
from desktop.core.errors import GenerationError, ModelFileError
from desktop.core.requests import GenerationRequest
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.service import EngineOptions, EngineService, describe_failure
from desktop.engine.txt2img import Txt2ImgPipeline


@pytest.fixture
def service(tmp_path: Path):
    engine = EngineService(EngineOptions(output_dir=tmp_path / "out", device="cpu", precision="fp32"))
    yield engine
    engine.close()


def small(model: Path, **changes) -> GenerationRequest:
    base = GenerationRequest(prompt="a red apple", steps=3, width=64, height=64, seed=100, model_path=model, sampler="Euler a")
    return replace(base, **changes)


def test_a_job_saves_each_image_with_the_same_pixels_and_metadata_as_the_pipeline(service, tiny_sd1: Path):
    request = small(tiny_sd1, batch_count=2)
    saved = []
    report = service.run(request, on_image=saved.append)
    assert report.outcome == "finished" and [s.seed for s in saved] == [100, 101]
    assert [s.index for s in saved] == [0, 1]

    # The service runs batch by batch; the result must equal one pipeline call for the whole job.
    pipeline = Txt2ImgPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")), service._loaded.info)
    direct = pipeline(request).images
    for image, expected in zip(saved, direct):
        on_disk = Image.open(image.path)
        assert on_disk.tobytes() == expected.image.tobytes()
        assert on_disk.text["parameters"] == expected.infotext == image.infotext


def test_progress_previews_and_the_model_stays_loaded_between_jobs(service, tiny_sd1: Path):
    progress, previews = [], []
    service.run(small(tiny_sd1, batch_count=2), on_progress=progress.append, on_preview=previews.append)
    assert [(p.image_index, p.step, p.batch_count) for p in progress] == [(0, 1, 2), (0, 2, 2), (0, 3, 2), (1, 1, 2), (1, 2, 2), (1, 3, 2)]
    assert len(previews) == 6 and (previews[0].width, previews[0].height) == (32, 32)  # tiny VAE: factor 2
    assert len(set(p.rgb for p in previews)) > 1
    loaded = service._loaded
    service.run(small(tiny_sd1, seed=5))
    assert service._loaded is loaded  # same file, same options: not loaded again

    service.configure(preview=False)
    previews.clear()
    service.run(small(tiny_sd1), on_preview=previews.append)
    assert previews == []


def test_skip_abandons_the_current_batch_and_the_job_goes_on(service, tiny_sd1: Path):
    tokens: list[CancelToken] = []

    def fresh_token() -> CancelToken:
        tokens.append(CancelToken())
        return tokens[-1]

    def on_progress(step) -> None:
        if step.image_index == 0 and step.step == 1:
            tokens[-1].cancel()

    saved = []
    report = service.run(small(tiny_sd1, batch_count=2), on_progress=on_progress, on_image=saved.append, skip=fresh_token)
    assert report.outcome == "finished"
    assert [s.seed for s in saved] == [101]


def test_cancel_keeps_finished_images_and_reports_cancelled(service, tiny_sd1: Path):
    cancel = CancelToken()
    saved = []

    def on_progress(step) -> None:
        if step.image_index == 1:
            cancel.cancel()

    report = service.run(small(tiny_sd1, batch_count=3), on_progress=on_progress, on_image=saved.append, cancel=cancel)
    assert report.outcome == "cancelled" and [s.seed for s in saved] == [100]
    assert len(list((service.options.output_dir).glob("*.png"))) == 1


def test_failures_are_reports_not_exceptions(service, tmp_path: Path, tiny_sd1: Path):
    no_model = service.run(small(tiny_sd1, model_path=None))
    assert no_model.outcome == "failed" and no_model.failure.user_error

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    report = service.run(small(broken))
    assert report.outcome == "failed" and report.failure.kind == ModelFileError.code
    assert "broken.safetensors" in report.failure.message

    bad_size = service.run(small(tiny_sd1, width=65))
    assert bad_size.failure.kind == "invalid_request" and "width" in bad_size.failure.message
    assert service.run(small(tiny_sd1)).outcome == "finished"  # and the service still works


def test_failure_descriptions_suggest_a_way_out():
    oom = describe_failure(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert oom.kind == "out_of_memory" and "smaller size" in oom.hint and "attention slicing" in oom.hint
    assert describe_failure(MemoryError()).kind == "out_of_memory"
    nan = describe_failure(GenerationError("the model produced NaN values", hint="precision"))
    assert nan.kind == "generation" and "fp32" in nan.hint and not nan.user_error
    unknown = describe_failure(KeyError("x"))
    assert unknown.kind == "internal" and "KeyError" in unknown.message


def test_taesd_previews_are_full_size_when_its_weights_are_installed(tmp_path: Path, tiny_sd1: Path):
    from diffusers import AutoencoderTiny

    roots = tmp_path / "models"
    taesd = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1))
    taesd.save_pretrained(roots / "VAE-approx" / "taesd", safe_serialization=True)
    engine = EngineService(EngineOptions(output_dir=tmp_path / "out", device="cpu", precision="fp32", model_roots=(roots,)))
    previews = []
    try:
        assert engine.run(small(tiny_sd1), on_preview=previews.append).outcome == "finished"
        # the decoder upsamples the 32x32 latent: TAESD ran, not the latent-size projection
        assert [(p.width, p.height) for p in previews] == [(64, 64)] * 3
        decoder = engine._taesd
        engine.run(small(tiny_sd1, seed=7), on_preview=previews.append)
        assert engine._taesd is decoder  # loaded once
        engine.configure(model_roots=())
        previews.clear()
        engine.run(small(tiny_sd1), on_preview=previews.append)
        assert (previews[0].width, previews[0].height) == (32, 32)  # back to the cheap projection
    finally:
        engine.close()
