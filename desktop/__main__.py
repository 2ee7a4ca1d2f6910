"""``python -m desktop``: headless commands (``generate``, ``info``); the window comes with the UI."""

from __future__ import annotations

import sys


def main() -> int:
    from desktop.cli import main as cli_main

    if len(sys.argv) == 1:
        print("Diffusion Desktop: the window is not built yet. Headless commands:", file=sys.stderr)
        cli_main(["--help"])
        return 0
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
