"""What a model file is: kind, base family, variant, prediction type and on-disk layout.

String enums in the InvokeAI manner: the value is the stable identifier stored in the catalogue and
settings, ``label`` is the English wording used in messages (the UI translates from the value).
"""

from __future__ import annotations

from enum import Enum


class _LabelledEnum(str, Enum):
    """A string enum whose members are declared as ``NAME = "value", "English label"``."""

    label: str

    def __new__(cls, value: str, label: str) -> _LabelledEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    def __str__(self) -> str:
        # (str, Enum) would print "ModelKind.LORA"; the value is what belongs in text and JSON.
        return str(self.value)


class ModelKind(_LabelledEnum):
    CHECKPOINT = "checkpoint", "checkpoint"
    LORA = "lora", "LoRA"
    LYCORIS = "lycoris", "LyCORIS network"
    EMBEDDING = "embedding", "textual-inversion embedding"
    VAE = "vae", "VAE"
    CONTROLNET = "controlnet", "ControlNet"
    UPSCALER = "upscaler", "upscaler"
    HYPERNETWORK = "hypernetwork", "hypernetwork"
    UNKNOWN = "unknown", "unknown file"


class ModelFamily(_LabelledEnum):
    SD1 = "sd1", "Stable Diffusion 1.x"
    SD2 = "sd2", "Stable Diffusion 2.x"
    SDXL = "sdxl", "Stable Diffusion XL"
    SDXL_REFINER = "sdxl_refiner", "Stable Diffusion XL refiner"
    SD3 = "sd3", "Stable Diffusion 3"
    FLUX = "flux", "Flux"
    UNKNOWN = "unknown", "an unknown base model"


class ModelVariant(_LabelledEnum):
    NORMAL = "normal", "normal"
    INPAINT = "inpaint", "inpainting"
    DEPTH = "depth", "depth-to-image"
    INSTRUCT_PIX2PIX = "instruct_pix2pix", "InstructPix2Pix"


class PredictionType(_LabelledEnum):
    EPSILON = "epsilon", "epsilon prediction"
    V_PREDICTION = "v_prediction", "v-prediction"
    UNKNOWN = "unknown", "unknown prediction type"


class ModelLayout(_LabelledEnum):
    LDM_SINGLE_FILE = "ldm_single_file", "single file in the original LDM layout"
    DIFFUSERS_FOLDER = "diffusers_folder", "diffusers folder"
    KOHYA = "kohya", "kohya network format"
    DIFFUSERS_LORA = "diffusers_lora", "diffusers/PEFT LoRA format"
    OTHER = "other", "other layout"


# Families the txt2img pipeline can run today.
GENERATION_FAMILIES = frozenset({ModelFamily.SD1, ModelFamily.SD2, ModelFamily.SDXL})
