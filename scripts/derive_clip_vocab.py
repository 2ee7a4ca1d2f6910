"""Derive the CLIP tokenizer files in resources/tokenizers/clip from OpenAI's public BPE table.

The table ``bpe_simple_vocab_16e6.txt.gz`` ships inside the ``open_clip_torch`` wheel
(``open_clip/bpe_simple_vocab_16e6.txt.gz``). This script rebuilds ``vocab.json`` and
``merges.txt`` exactly the way CLIP's own tokenizer builds its encoder, so the committed files
can be checked by anyone::

    pip download --no-deps open_clip_torch==3.3.0 -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python scripts/derive_clip_vocab.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "resources" / "tokenizers" / "clip"
MERGE_COUNT = 49152 - 256 - 2  # CLIP uses the first 48894 merges of the table


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def derive(bpe_gz: Path, out_dir: Path = OUT_DIR) -> None:
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab += [token + "</w>" for token in vocab]
    vocab += ["".join(merge) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = {token: index for index, token in enumerate(vocab)}
    (out_dir / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    print(f"wrote {len(encoder)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    derive(Path(sys.argv[1]))
