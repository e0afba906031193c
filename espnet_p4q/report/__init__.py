"""The results report of a P4Q comparison run: RESULTS.md/.json tables and WER sweep plots.

Why a package of its own: the numbers a paper table shows (pooled WER, relative changes, sizes,
speaker-specific parameters, adaptation time, RTF, MAPSSWE) come from files several pipeline
stages write; each module here reads one kind of them, checks it and names the file when it is
wrong. Scoring itself is left to :mod:`espnet_p4q.scoring`.

``manifest`` reads systems.json, ``speakers`` the speaker lists, ``wer`` scores decodings per
speaker, ``facts`` reads sizes, train.json and decode.json, ``results`` puts the table together,
``markdown`` renders it, ``sets`` makes the per-set WER tables from the scorer's wer.json,
``sweep`` scores and plots WER against a swept setting, ``json_fields`` checks JSON inputs.
``python -m espnet_p4q.bin.make_results`` writes RESULTS.md from them.
"""
