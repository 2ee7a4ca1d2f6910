"""One model file as the catalogue knows it: what it is, its hashes (once computed) and its sidecars.

A plain frozen record, safe to pass between threads; the browser shows it, the prompt editor
inserts its name, and the details dialog prints every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CatalogueEntry:
    path: Path
    kind: str  # a ModelKind value ("checkpoint", "lora", "lycoris", "embedding", "vae", "hypernetwork", ...)
    family: str  # a ModelFamily value ("sd1", "sdxl", ...); "unknown" when the file does not say
    size: int
    mtime_ns: int
    description: str = ""  # ModelProbe.describe(), English
    variant: str = "normal"
    reasons: tuple[str, ...] = ()  # the probe's evidence, for Show Details
    error: str = ""  # why the file could not be probed ("" when it was)
    sha256: str = ""  # "" until hashed in the background
    tensor_hash: str = ""  # sha256 of the tensor bytes (safetensors only): Lora/TI hashes
    legacy_hash: str = ""
    preview: Path | None = None  # name.preview.png / name.png, when present
    trigger_words: tuple[str, ...] = ()  # from name.civitai.info / name.json activation text
    base_model: str = ""  # civitai's "baseModel" ("SD 1.5", "SDXL 1.0"...)
    civitai_url: str = ""
    preferred_weight: float | None = None  # name.json "preferred weight": what clicking a LoRA inserts
    notes: str = ""  # name.json "description"/"notes", name.txt
    metadata: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # safetensors __metadata__ for display, truncated
    is_folder: bool = False  # a diffusers folder rather than a single file

    @property
    def name(self) -> str:
        """What A1111 shows and what ``<lora:name>`` and embedding names refer to: the file name without extension."""
        return self.path.name if self.is_folder else self.path.stem

    @property
    def model_hash(self) -> str:
        """AutoV2, the "Model hash" of infotext (10 hex chars); "" until hashed."""
        return self.sha256[:10]

    @property
    def network_hash(self) -> str:
        """The 12-char hash of "Lora hashes"/"TI hashes"; "" until hashed."""
        return self.tensor_hash[:12]

    @property
    def hashed(self) -> bool:
        return bool(self.sha256) or self.is_folder
