"""Prompt styles in A1111's ``styles.csv`` (name, prompt, negative_prompt), so A1111 files just work.

>>> apply_style("a cat", "masterpiece, {prompt}, best quality")
'masterpiece, a cat, best quality'
>>> apply_style("a cat", "film grain")
'a cat, film grain'
>>> apply_style("", "film grain")
'film grain'
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from desktop.library.atomic_write import write_text_atomically
from desktop.library.file_errors import reading

_FIELDS = ("name", "prompt", "negative_prompt")


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def apply_style(prompt: str, style_text: str) -> str:
    """A1111's rule: ``{prompt}`` in the style is replaced by the prompt, otherwise the style is appended."""
    if not style_text:
        return prompt
    if "{prompt}" in style_text:
        return style_text.replace("{prompt}", prompt)
    if not prompt.strip():
        return style_text
    return f"{prompt.rstrip().rstrip(',')}, {style_text}"


def read_styles(path: Path) -> list[Style]:
    """Styles from a ``styles.csv`` (missing file: none). Rows without a name are skipped."""
    if not path.exists():
        return []
    with reading(path):
        text = path.read_text(encoding="utf-8-sig")
    styles = []
    for row in csv.DictReader(io.StringIO(text)):
        name = (row.get("name") or "").strip()
        if name:
            styles.append(Style(name, row.get("prompt") or "", row.get("negative_prompt") or ""))
    return styles


def write_styles(path: Path, styles: list[Style]) -> None:
    """Write atomically (temporary file, then rename), in A1111's column order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_FIELDS, lineterminator="\n")
    writer.writeheader()
    for style in styles:
        writer.writerow({"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt})
    write_text_atomically(path, buffer.getvalue())
