#!/usr/bin/env python3
"""Score several decoded sets in one process with espnet_p4q's scorer.

    score_sets.py JOBS.tsv

Each line of JOBS.tsv is ``REF_TEXT<TAB>HYP_TEXT<TAB>OUTPUT_DIR<TAB>TITLE``; each is scored exactly
as ``python -m espnet_p4q.bin.score --ref_text REF --hyp_text HYP --output_dir DIR --title TITLE``
would (the same library function, in this one process, so the imports are paid once). Every line
is tried; a failure prints one line naming the file, and the exit status is 1 when any failed.
"""

from __future__ import annotations

import sys

from espnet_p4q.cli import guarded, one_line
from espnet_p4q.scoring.score_set import score_set


@guarded("score_sets.py")
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
        try:
            summary = score_set(ref, hyp, out, title)
        except Exception as e:  # noqa: BLE001 - every set is tried; each failure is one line
            print(f"score_sets.py: error: {one_line(e)}", file=sys.stderr)
            failed.append(job)
            continue
        print(f"WER {summary['wer']:.2f}% -> {out}/result.txt" if summary["wer"] is not None
              else f"WER n/a -> {out}/result.txt", flush=True)
    if failed:
        print(f"score_sets.py: {len(failed)} of {len(jobs)} set(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
