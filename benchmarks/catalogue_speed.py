"""What the model catalogue costs: scanning a big library, and hashing against plain hashlib.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/catalogue_speed.py --files 2000 --hash-mb 1024

- First scan (every header probed) and rescan (nothing changed: no file is opened) of ``--files``
  small LoRA files, in seconds.
- Hashing one ``--hash-mb`` MB safetensors file the way the catalogue does (sha256 of the file,
  the tensor hash and the legacy hash in one pass) against ``hashlib.sha256`` over the same bytes:
  the ratio is the catalogue's cost per byte (1.00 = as fast as hashlib alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from desktop.library.catalogue import Catalogue  # noqa: E402


def write_lora(path: Path, data_bytes: int = 4096) -> None:
    rows = data_bytes // (4 * 320)
    header = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": {"dtype": "F32", "shape": [rows, 320], "data_offsets": [0, rows * 320 * 4]},
        "__metadata__": {"ss_network_dim": "4"},
    }
    raw = json.dumps(header).encode()
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        file.write(bytes(rows * 320 * 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--hash-mb", type=int, default=512)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "models"
        lora = root / "Lora"
        lora.mkdir(parents=True)
        for number in range(args.files):
            write_lora(lora / f"lora {number:05d}.safetensors")
        with Catalogue(Path(scratch) / "catalogue.sqlite") as catalogue:
            start = time.perf_counter()
            entries = catalogue.scan([root])
            first = time.perf_counter() - start
            start = time.perf_counter()
            catalogue.scan([root])
            again = time.perf_counter() - start
            print(f"scan of {len(entries)} files: first {first:.2f} s, unchanged rescan {again:.3f} s")

            big = lora / "big.safetensors"
            write_lora(big, args.hash_mb << 20)
            catalogue.scan([root])
            with big.open("rb") as file:  # warm the page cache for both runs
                while file.read(1 << 24):
                    pass
            start = time.perf_counter()
            digest = hashlib.sha256()
            with big.open("rb") as file:
                while block := file.read(1 << 20):
                    digest.update(block)
            plain = time.perf_counter() - start
            start = time.perf_counter()
            entry = catalogue.hash_file(big)
            ours = time.perf_counter() - start
            assert entry is not None and entry.sha256 == digest.hexdigest()
            size_mb = big.stat().st_size / 1e6
            print(
                f"hashing {size_mb:.0f} MB: hashlib {size_mb / plain:.0f} MB/s, catalogue (3 hashes, one pass) "
                f"{size_mb / ours:.0f} MB/s, ratio {ours / plain:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
