"""``python -m gateway [flags]``: start the gateway (see --help)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .server import serve
from .settings import load_settings


def main(argv: Sequence[str] | None = None) -> None:
    serve(load_settings(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
