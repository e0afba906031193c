#!/usr/bin/env python3
"""Score several decoded sets in one process with espnet_p4q's scorer.

    score_sets.py JOBS.tsv

Each line of JOBS.tsv is ``REF_TEXT<TAB>HYP_TEXT<TAB>OUTPUT_DIR<TAB>TITLE``; each is scored exactly
as ``python -m espnet_p4q.bin.score --ref_text REF --hyp_text HYP --output_dir DIR --title TITLE``
would (its ``main`` is called in this process, so the imports are paid once). Every line is tried;
the exit status is 1 when any failed.
"""

from __future__ import annotations

import sys

from espnet_p4q.bin.score import main as score_main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    failed = []
    with open(argv[0], encoding="utf-8") as f:
        jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for job in jobs:
        if len(job) != 4:
            print(f"score_sets.py: bad line (want 4 tab-separated fields): {job}", file=sys.stderr)
            failed.append(job)
            continue
        ref, hyp, out, title = job
        print(f"scoring {hyp} against {ref} -> {out}", flush=True)
        rc = score_main(["--ref_text", ref, "--hyp_text", hyp, "--output_dir", out,
                         "--title", title])
        if rc:
            failed.append(job)
    if failed:
        print(f"score_sets.py: {len(failed)} of {len(jobs)} set(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
