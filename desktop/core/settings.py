"""Every app setting, declared once: key, type (from the default), default, allowed choices.

The UI stores them (QSettings) and builds Preferences from them; nothing else hard-codes a key or a
default. Parameter-panel values are remembered under ``params/`` with the request's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SETTINGS_VERSION = 1


@dataclass(frozen=True)
class Setting(Generic[T]):
    key: str
    default: T
    choices: tuple[T, ...] = ()

    def coerce(self, raw: Any) -> T:
        """A stored value as this setting's type; anything unusable gives the default.

        Ini files hand back strings ("true", "20"), lists may come back as a lone string.
        """
        default = self.default
        try:
            if isinstance(default, bool):
                value: Any = raw if isinstance(raw, bool) else str(raw).strip().lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            elif isinstance(default, tuple):
                items = [raw] if isinstance(raw, str) else list(raw)
                value = tuple(str(item) for item in items if str(item))
            else:
                value = str(raw)
        except (TypeError, ValueError):
            return default
        if self.choices and value not in self.choices:
            return default
        return value


# Preferences
MODEL_FOLDERS = Setting[tuple[str, ...]]("library/model_folders", ())  # extra A1111/ComfyUI model roots
INSTALL_MODE = Setting[str]("library/install_mode", "copy", ("copy", "move", "link"))  # for dropped model files
OUTPUT_FOLDER = Setting[str]("output/folder", "")  # "" = Pictures/Diffusion Desktop
DEVICE = Setting[str]("engine/device", "auto", ("auto", "mps", "cuda", "cpu"))
PRECISION = Setting[str]("engine/precision", "auto", ("auto", "fp16", "bf16", "fp32"))
ATTENTION_SLICING = Setting[bool]("engine/attention_slicing", False)
PREVIEW = Setting[str]("engine/preview", "approx", ("approx", "off"))
LANGUAGE = Setting[str]("ui/language", "system", ("system", "en", "zh_CN", "bilingual"))

# The parameters panel (remembered between runs)
CHECKPOINT = Setting[str]("params/checkpoint", "")
VAE = Setting[str]("params/vae", "")  # "" = the checkpoint's own
PROMPT = Setting[str]("params/prompt", "")
NEGATIVE_PROMPT = Setting[str]("params/negative_prompt", "")
SAMPLER = Setting[str]("params/sampler", "DPM++ 2M")
SCHEDULE = Setting[str]("params/schedule", "Automatic")
STEPS = Setting[int]("params/steps", 20)
CFG_SCALE = Setting[float]("params/cfg_scale", 7.0)
WIDTH = Setting[int]("params/width", 512)
HEIGHT = Setting[int]("params/height", 512)
SEED = Setting[int]("params/seed", -1)
BATCH_COUNT = Setting[int]("params/batch_count", 1)
BATCH_SIZE = Setting[int]("params/batch_size", 1)
CLIP_SKIP = Setting[int]("params/clip_skip", 1)
