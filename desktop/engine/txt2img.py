"""txt2img as a straight line of public steps: check inputs, encode, noise, sample, decode, postprocess."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from desktop.backends.base import UNetBackend, VAEBackend
from desktop.backends.torch_backend import TorchUNet, TorchVAE
from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import GenerationError
from desktop.core.events import StepProgress
from desktop.core.generation_params import ModelInfo, generation_parameters
from desktop.core.infotext import format_infotext
from desktop.core.requests import GenerationRequest
from desktop.core.prompt_syntax import NetworkRef, extract_networks
from desktop.engine.conditioning import encode_prompt, encode_prompt_sdxl
from desktop.engine.denoiser import CFGDenoiser, CompVisDenoiser, CompVisTimestepsDenoiser, DiscreteSchedule, WrapperFactory
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning, build_prompt_conditioning
from desktop.engine.loading import LoadedModel
from desktop.engine.networks.activation import JobNetworks
from desktop.engine.networks.embeddings import PromptEmbeddings
from desktop.engine.noise import ImageNoise, SeedVariation
from desktop.engine.samplers import SamplerKind, SamplerSpec, find_sampler
from desktop.engine.samplers.brownian import BrownianTreeNoise, brownian_sigma_range
from desktop.engine.samplers.common import NoiseSource
from desktop.engine.samplers.lcm import LCMDenoiser, LCMSchedule
from desktop.engine.samplers.timesteps import compvis_timesteps
from desktop.engine.schedules import AUTOMATIC, SCHEDULE_TYPES, find_schedule
from desktop.library.taxonomy import ModelFamily

ProgressCallback = Callable[[StepProgress], None]
ImageCallback = Callable[["GeneratedImage"], None]
DenoisedCallback = Callable[[int, torch.Tensor], None]  # (1-based step, the model's current x0 estimate)

@dataclass(frozen=True)
class SamplingPlan:
    sampler: SamplerSpec
    schedule_label: str  # as recorded in infotext ("Automatic", "Karras", ...)
    sigmas: torch.Tensor  # timestep samplers: the training sigmas of their timesteps, high to low (for the record)
    timesteps: torch.Tensor | None = None  # A1111's integer timesteps, ascending (DDIM, PLMS, UniPC only)

    @property
    def steps_input(self) -> torch.Tensor:
        """What the sampler function walks through: the timesteps of a timestep sampler, else the sigmas."""
        return self.sigmas if self.timesteps is None else self.timesteps


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    index: int  # position in the job (batch_index * batch_size + i)
    infotext: str  # A1111 "parameters" text that reproduces this image


@dataclass(frozen=True)
class Txt2ImgResult:
    images: list[GeneratedImage]
    sampler_name: str  # canonical A1111 names, as infotext records them
    schedule_label: str
    cancelled: bool = False
    vae_upcast: bool = False  # the half-precision VAE produced NaNs and was retried in fp32
    network_tags: tuple[NetworkRef, ...] = ()  # the <lora:...> tags taken out of the prompt (the service applies them)


# A1111's model wrapper for each sampler class (the inner model of its CFGDenoiser).
MODEL_WRAPPERS: dict[SamplerKind, WrapperFactory] = {
    SamplerKind.SIGMAS: CompVisDenoiser,
    SamplerKind.TIMESTEPS: CompVisTimestepsDenoiser,
    SamplerKind.LCM: LCMDenoiser,
}


def resolve_sampling(request: GenerationRequest, schedule: DiscreteSchedule, *, sdxl: bool = False) -> SamplingPlan:
    """The sampler and sigmas for the request. "Automatic" means the sampler's own default (A1111)."""
    spec, implied_schedule = find_sampler(request.sampler)
    label = find_schedule(request.schedule)
    if spec.kind is SamplerKind.TIMESTEPS:
        # A1111's CompVisSampler ignores the schedule type; infotext still records the one chosen
        # (create_infotext writes p.scheduler, and only k-diffusion samplers replace it).
        timesteps = compvis_timesteps(request.steps)
        return SamplingPlan(spec, label, schedule.sigmas[timesteps].flip(0), timesteps)
    if spec.kind is SamplerKind.LCM:
        schedule = LCMSchedule(schedule.alphas_cumprod)  # every schedule type sees LCM's 50-sigma table
    if label == AUTOMATIC and implied_schedule:
        label = implied_schedule  # an old combined name such as "DPM++ 2M Karras"
    if label == AUTOMATIC:
        label = spec.default_schedule or AUTOMATIC
    schedule_type = SCHEDULE_TYPES["Uniform" if label == AUTOMATIC else label]
    if not spec.discard_next_to_last_sigma:
        return SamplingPlan(spec, label, schedule_type.sigmas(request.steps, schedule, sdxl=sdxl))
    # A1111's get_sigmas for DPM2 / DPM2 a: schedule one step more, then drop the next-to-last sigma.
    sigmas = schedule_type.sigmas(request.steps + 1, schedule, sdxl=sdxl)
    return SamplingPlan(spec, label, torch.cat([sigmas[:-2], sigmas[-1:]]))


class Txt2ImgPipeline:
    def __init__(
        self,
        model: LoadedModel,
        model_info: ModelInfo | None = None,
        *,
        unet: UNetBackend | None = None,
        vae: VAEBackend | None = None,
        networks: JobNetworks | None = None,
    ) -> None:
        self.model = model
        self.networks = networks or JobNetworks()  # embeddings to place, and the infotext keys of what was used
        self.model_info = model_info or ModelInfo(name=model.path.stem if model.path.is_file() else model.path.name)
        self.unet = unet or TorchUNet(model.unet)
        self.vae = vae or TorchVAE(model.vae, model.vae_scaling_factor)
        self.schedule = DiscreteSchedule(model.alphas_cumprod)

    def __call__(
        self,
        request: GenerationRequest,
        *,
        on_step: ProgressCallback | None = None,
        on_image: ImageCallback | None = None,
        cancel: CancelToken | None = None,
        on_denoised: DenoisedCallback | None = None,
    ) -> Txt2ImgResult:
        """Run the job; ``on_image`` gets each image as soon as it is decoded (so it can be saved at once)."""
        request = self.check_inputs(request)
        plan = resolve_sampling(request, self.schedule, sdxl=self.model.family is ModelFamily.SDXL)
        conditioning, networks = self.encode(request, plan)
        images: list[GeneratedImage] = []
        cancelled = False
        try:
            for batch_index in range(request.batch_count):
                seeds = request.image_seeds(batch_index)
                latents = self.sample(request, plan, conditioning, seeds, batch_index, on_step, cancel, on_denoised)
                pixels = self.decode(latents)
                variation_seeds = request.image_variation_seeds(batch_index)
                for offset, (seed, image) in enumerate(zip(seeds, self.postprocess(pixels))):
                    infotext = self.infotext(request, plan, seed, variation_seeds[offset])
                    generated = GeneratedImage(image, seed, batch_index * request.batch_size + offset, infotext)
                    images.append(generated)
                    if on_image is not None:
                        on_image(generated)
        except Cancelled:
            cancelled = True  # an outcome, not an error: the finished images are kept
        return Txt2ImgResult(
            images,
            plan.sampler.name,
            plan.schedule_label,
            cancelled=cancelled,
            vae_upcast=bool(getattr(self.vae, "upcast_after_nan", False)),
            network_tags=tuple(networks),
        )

    @property
    def latent_factor(self) -> int:
        """How much the VAE downsamples: 8 for every real SD VAE (4 levels)."""
        return 2 ** (len(self.model.vae.config.block_out_channels) - 1)

    def check_inputs(self, request: GenerationRequest) -> GenerationRequest:
        request.validate()
        find_sampler(request.sampler)
        find_schedule(request.schedule)
        return request.with_resolved_seed()

    def encode(self, request: GenerationRequest, plan: SamplingPlan) -> tuple[PromptConditioning, list[NetworkRef]]:
        """Remove extra-network tags, then split on AND, schedule and encode both prompts (A1111's order).

        A1111 looks for network tags in the positive prompt only; in the negative they are text.
        """
        prompt, networks = extract_networks(request.prompt)
        model = self.model
        library = self.networks.embeddings
        embeddings = PromptEmbeddings.for_encoders(library, model.text_encoders) if library is not None else None

        def encode_text(text: str) -> EncodedText:
            if model.family is ModelFamily.SDXL:
                context, pooled = encode_prompt_sdxl(
                    text, model.tokenizers, model.text_encoders, novelai=request.novelai_emphasis, embeddings=embeddings
                )
                return EncodedText(context, pooled)
            context = encode_prompt(
                text,
                model.tokenizers[0],
                model.text_encoders[0],
                clip_skip=request.clip_skip,
                family=model.family,
                novelai=request.novelai_emphasis,
                embeddings=embeddings,
            )
            return EncodedText(context)

        # Second-order samplers call the model twice a step, and A1111 counts schedules in calls.
        schedule_steps = request.steps * (2 if plan.sampler.second_order else 1)
        conditioning = build_prompt_conditioning(prompt, request.negative_prompt, schedule_steps, encode_text)
        if embeddings is not None:
            self.networks.note_embeddings(embeddings.used, embeddings.warnings)
        return conditioning, networks

    def sample(
        self,
        request: GenerationRequest,
        plan: SamplingPlan,
        conditioning: PromptConditioning,
        seeds: list[int],
        batch_index: int,
        on_step: ProgressCallback | None,
        cancel: CancelToken | None,
        on_denoised: DenoisedCallback | None = None,
    ) -> torch.Tensor:
        channels = self.model.unet.config.in_channels
        factor = self.latent_factor
        variation = SeedVariation(
            subseeds=request.image_variation_seeds(batch_index),
            strength=request.variation_strength,
            resize_from=request.resize_seed_from,
        )
        noise = ImageNoise(seeds, (channels, request.height // factor, request.width // factor), variation)
        first = noise.next()
        # A1111's timestep samplers start from the unscaled noise (variance-preserving x at t = 999).
        x = first if plan.sampler.kind is SamplerKind.TIMESTEPS else first * plan.sigmas[0]
        time_ids = None
        if self.model.family is ModelFamily.SDXL:
            # original size, crop top-left, target size: A1111 passes the image size for both.
            time_ids = torch.tensor([[request.height, request.width, 0, 0, request.height, request.width]], dtype=torch.float32)
        denoiser = CFGDenoiser(
            self.unet,
            self.schedule,
            self.model.prediction,
            conditioning,
            request.cfg_scale,
            cancel,
            time_ids=time_ids,
            wrapper=MODEL_WRAPPERS[plan.sampler.kind],
        )
        started = time.perf_counter()

        def step_done(i: int, denoised: torch.Tensor) -> None:
            # DPM adaptive chooses its own step count (and Restart's differs from the request):
            # progress never claims more than the steps asked for.
            step = min(i + 1, request.steps)
            if on_denoised is not None:
                on_denoised(step, denoised)
            if on_step is not None:
                on_step(StepProgress(batch_index, request.batch_count, step, request.steps, time.perf_counter() - started))

        latents = plan.sampler.function(
            denoiser, x, plan.steps_input, callback=step_done, noise=self.noise_source(plan, noise, x, seeds), **self.sampler_options(plan)
        )
        if torch.isnan(latents).any():
            raise GenerationError(
                "the model produced NaN values; try --precision fp32 (or another checkpoint)",
                hint="precision",
            )
        return latents

    @staticmethod
    def noise_source(plan: SamplingPlan, noise: ImageNoise, x: torch.Tensor, seeds: list[int]) -> NoiseSource:
        """The sampler's noise: Brownian trees of this batch's seeds (SDE samplers) or the images' generators."""
        if plan.sampler.brownian_noise:
            sigma_min, sigma_max = brownian_sigma_range(plan.sigmas)
            return BrownianTreeNoise(x, sigma_min, sigma_max, seeds)
        return lambda sigma, sigma_next: noise.next()

    def sampler_options(self, plan: SamplingPlan) -> dict[str, object]:
        """A1111's txt2img runs DPM fast / adaptive over the model's whole sigma range, whatever the schedule;
        the timestep samplers read the model's alphas_cumprod."""
        if plan.sampler.kind is SamplerKind.TIMESTEPS:
            return {"alphas_cumprod": self.schedule.alphas_cumprod}
        if plan.sampler.model_sigma_range:
            return {"sigma_min": self.schedule.sigma_min, "sigma_max": self.schedule.sigma_max}
        return {}

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents)

    @staticmethod
    def postprocess(pixels: torch.Tensor) -> list[Image.Image]:
        """A1111: clamp((x + 1) / 2, 0, 1) * 255, truncated to uint8."""
        scaled = torch.clamp((pixels + 1.0) / 2.0, min=0.0, max=1.0)
        arrays = (255.0 * scaled.permute(0, 2, 3, 1).numpy()).astype(np.uint8)
        return [Image.fromarray(array) for array in arrays]

    def infotext(self, request: GenerationRequest, plan: SamplingPlan, seed: int, variation_seed: int | None = None) -> str:
        params = generation_parameters(
            request,
            seed=seed,
            variation_seed=variation_seed,
            sampler_name=plan.sampler.name,
            schedule_label=plan.schedule_label,
            model=self.model_info,
        )
        if self.networks.extra_params:
            # A1111 writes the networks' keys (Lora hashes, TI hashes...) after its own, before Version.
            version = params.pop("Version")
            params.update(self.networks.extra_params)
            params["Version"] = version
        return format_infotext(request.prompt, request.negative_prompt, params)
