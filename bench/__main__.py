"""``python -m bench NAME``: run one benchmark; its last output line is a JSON summary."""

from __future__ import annotations

import sys
from importlib import import_module


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [ARGS...]   (codec, producer, scheduler, lag, ...)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    try:
        module = import_module(f"bench.{name}")
    except ModuleNotFoundError:
        print(f"Error: no benchmark named {name!r}", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
