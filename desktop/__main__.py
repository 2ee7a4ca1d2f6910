"""``python -m desktop`` opens the window; ``python -m desktop generate ...`` and ``info`` are headless."""

from __future__ import annotations

import sys

GUI_FLAGS = ("--time-to-window",)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--convert-pickle-child":
        # The frozen app runs itself as the isolated pickle converter (see desktop.library.pickle_convert).
        from desktop.library.pickle_reader import main as reader_main

        return reader_main(sys.argv[2:])
    if len(sys.argv) == 1 or sys.argv[1] in GUI_FLAGS:
        from desktop.app import main as app_main

        return app_main(sys.argv)
    from desktop.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
