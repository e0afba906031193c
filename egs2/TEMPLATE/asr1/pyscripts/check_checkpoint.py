#!/usr/bin/env python3
"""Make an interrupted espnet2 training safe to resume.

espnet2's trainer writes, at the end of each epoch, first ``checkpoint.pth`` and then
``<N>epoch.pth`` with plain ``torch.save``; a run killed during either write leaves a truncated
file that crashes the resumed run (at the latest when it averages the best epochs). This script

* exits 1 when ``checkpoint.pth`` itself cannot be loaded (the caller then restarts training);
* rewrites ``<N>epoch.pth`` of the checkpoint's epoch from the checkpoint's own model state when
  that file is missing or truncated (the state is the same one the trainer was writing);
* removes any other unreadable ``*epoch.pth`` (it would only break model averaging);
* exits 0 when the directory can be resumed from.

    check_checkpoint.py exp/asr_x/checkpoint.pth
"""

import os
import re
import sys
from pathlib import Path

import torch

from espnet_p4q.cli import guarded


def _loads(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=False)
        return True
    except Exception:  # noqa: BLE001 - any failure means the file is unusable
        return False


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@guarded("check_checkpoint.py")
def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0 if len(sys.argv) == 2 else 2
    checkpoint = Path(sys.argv[1])
    try:
        states = torch.load(checkpoint, map_location="cpu", weights_only=False)
        missing = [k for k in ("model", "reporter", "optimizers") if k not in states]
        if missing:
            raise ValueError(f"keys missing: {missing}")
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot be resumed from
        print(f"{checkpoint}: cannot be loaded: {e}", file=sys.stderr)
        return 1

    exp = checkpoint.parent
    epoch = int(states["reporter"].get("epoch", 0))
    for path in sorted(exp.glob("*epoch.pth")):
        m = re.fullmatch(r"(\d+)epoch\.pth", path.name)
        if not m or path.is_symlink() or int(m.group(1)) == epoch or _loads(path):
            continue
        print(f"{path}: truncated; removed", file=sys.stderr)
        path.unlink()
    own = exp / f"{epoch}epoch.pth"
    if epoch > 0 and not _loads(own):
        print(f"{own}: missing or truncated; rewritten from {checkpoint}", file=sys.stderr)
        _save_atomic(states["model"], own)
    return 0


if __name__ == "__main__":
    sys.exit(main())
