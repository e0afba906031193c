#!/usr/bin/env python3
"""Exit 0 when an espnet2 training checkpoint can be loaded, 1 when it cannot (e.g. a run was
killed while torch.save was writing it), so that a resumed training does not crash on it.

    check_checkpoint.py exp/asr_x/checkpoint.pth
"""

import sys

import torch


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        states = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
        missing = [k for k in ("model", "reporter", "optimizers") if k not in states]
        if missing:
            raise ValueError(f"keys missing: {missing}")
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot be resumed from
        print(f"{sys.argv[1]}: cannot be loaded: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
