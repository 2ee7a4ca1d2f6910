"""The txt2img pipeline: progress, cancellation, images as they finish, NaN handling."""

from __future__ import annotations

import pytest
import torch

from desktop.backends.torch_backend import TorchVAE
from desktop.core.cancel import CancelToken
from desktop.core.errors import GenerationError, InvalidRequest
from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.engine.devices import DevicePlan, plan_devices
from desktop.engine.loading import load_model
from desktop.engine.txt2img import Txt2ImgPipeline


@pytest.fixture(scope="module")
def pipeline(tiny_sd1):
    return Txt2ImgPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")))


def request(**overrides) -> GenerationRequest:
    values = dict(prompt="a cat", steps=4, width=32, height=32, seed=11)
    values.update(overrides)
    return GenerationRequest(**values)


def test_progress_per_step_and_images_as_they_finish(pipeline):
    events, finished = [], []
    result = pipeline(
        request(batch_count=2, batch_size=2),
        on_step=events.append,
        on_image=lambda image: finished.append((image.seed, len(events))),
    )
    assert not result.cancelled
    assert [(e.image_index, e.step) for e in events] == [(b, s) for b in range(2) for s in range(1, 5)]
    assert events[-1].fraction == 1.0
    # the first batch's images are handed over before the second batch starts sampling
    assert finished == [(11, 4), (12, 4), (13, 8), (14, 8)]
    assert [img.index for img in result.images] == [0, 1, 2, 3]
    params = parse_infotext(result.images[3].infotext)[2]
    assert (params["Seed"], params["Sampler"], params["Steps"]) == ("14", "Euler a", "4")


def test_cancel_stops_within_a_step_and_keeps_finished_images(pipeline):
    cancel = CancelToken()
    calls = []

    def on_step(progress):
        calls.append(progress)
        if progress.image_index == 1 and progress.step == 2:
            cancel.cancel()

    result = pipeline(request(batch_count=3), on_step=on_step, cancel=cancel)
    assert result.cancelled
    assert [img.seed for img in result.images] == [11]  # batch 1 finished; batch 2 was cut short
    assert (calls[-1].image_index, calls[-1].step) == (1, 2)  # no step ran after the cancel


def test_cancel_before_start_runs_no_step(pipeline):
    cancel = CancelToken()
    cancel.cancel()
    steps = []
    result = pipeline(request(), on_step=steps.append, cancel=cancel)
    assert result.cancelled and result.images == [] and steps == []


def test_seed_minus_one_is_resolved_and_recorded(pipeline):
    result = pipeline(request(seed=-1))
    seed = result.images[0].seed
    assert 0 <= seed <= 2**32 - 1
    assert parse_infotext(result.images[0].infotext)[2]["Seed"] == str(seed)


def test_invalid_requests_fail_before_any_work(pipeline):
    for bad in (request(width=30), request(steps=0), request(sampler="Nope"), request(schedule="nope")):
        with pytest.raises(InvalidRequest):
            pipeline(bad)


def test_nan_from_the_unet_is_an_error_not_an_image(pipeline):
    class NaNUNet:
        def predict(self, latents, timesteps, context, added=None):
            return torch.full_like(latents, float("nan"))

    broken = Txt2ImgPipeline(pipeline.model, unet=NaNUNet())
    saved = []
    with pytest.raises(GenerationError, match="NaN"):
        broken(request(), on_image=saved.append)
    assert saved == []


def test_half_precision_vae_that_overflows_is_rerun_in_fp32(tiny_sd1):
    """BAD_INPUTS 21: a fp16 VAE producing NaNs is retried in fp32 instead of saving a black image."""
    model = load_model(tiny_sd1, DevicePlan(torch.device("cpu"), torch.float32, torch.float16))
    assert next(model.vae.parameters()).dtype == torch.float16
    with torch.no_grad():
        model.vae.post_quant_conv.weight.mul_(1e5)  # fine in fp32, overflows fp16 (max 65504) into NaN
    vae = TorchVAE(model.vae, model.vae_scaling_factor)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    images = vae.decode(latents)
    assert vae.upcast_after_nan
    assert not torch.isnan(images).any()
    assert next(model.vae.parameters()).dtype == torch.float32


class _RecordingUNet:
    """Wraps the real backend and keeps the context of every call."""

    def __init__(self, inner):
        self.inner = inner
        self.contexts = []

    def predict(self, latents, timesteps, context, added=None):
        self.contexts.append(context.clone())
        return self.inner.predict(latents, timesteps, context, added)


def test_scheduled_prompt_switches_conditioning_at_a1111s_step(pipeline):
    from desktop.engine.conditioning import encode_prompt

    model = pipeline.model
    recorder = _RecordingUNet(pipeline.unet)
    scheduled = Txt2ImgPipeline(model, unet=recorder)
    result = scheduled(request(prompt="a [cat:dog:2]", negative_prompt="", steps=4, sampler="Euler"))
    assert len(result.images) == 1
    cat = encode_prompt("a cat", model.tokenizers[0], model.text_encoders[0])
    dog = encode_prompt("a dog", model.tokenizers[0], model.text_encoders[0])
    firsts = [context[:1] for context in recorder.contexts]  # row 0 is the conditional row
    assert [torch.equal(c, cat) for c in firsts] == [True, True, True, False]  # calls 0..2: step <= 2
    assert torch.equal(firsts[3], dog)


def test_alternation_switches_every_call(pipeline):
    from desktop.engine.conditioning import encode_prompt

    model = pipeline.model
    recorder = _RecordingUNet(pipeline.unet)
    Txt2ImgPipeline(model, unet=recorder)(request(prompt="[cat|dog]", steps=4, sampler="Euler"))
    cat = encode_prompt("cat", model.tokenizers[0], model.text_encoders[0])
    dog = encode_prompt("dog", model.tokenizers[0], model.text_encoders[0])
    picks = ["cat" if torch.equal(c[:1], cat) else "dog" if torch.equal(c[:1], dog) else "?" for c in recorder.contexts]
    # A1111: schedule [(1, cat), (2, dog), (3, cat), (4, dog)] read with current_step <= end
    assert picks == ["cat", "cat", "dog", "cat"]


def test_and_and_networks_are_handled_and_reported(pipeline):
    recorder = _RecordingUNet(pipeline.unet)
    result = Txt2ImgPipeline(pipeline.model, unet=recorder)(
        request(prompt="a cat AND a hat :0.5 <lora:detail:0.7>", negative_prompt="<lora:bad:1>", steps=2)
    )
    assert recorder.contexts[0].shape[0] == 3  # two AND parts and the negative, one image
    # A1111 takes network tags from the positive prompt only; in the negative they are plain text
    assert [(n.kind, n.name, n.te_weight) for n in result.network_tags] == [("lora", "detail", 0.7)]
    assert parse_infotext(result.images[0].infotext)[0] == "a cat AND a hat :0.5 <lora:detail:0.7>"
