"""sclite-compatible WER scoring and the MAPSSWE significance test.

``trn`` reads Kaldi text and writes/reads sclite trn files, ``align`` aligns words as sclite does,
``sclite_report`` counts errors per speaker and writes sclite's ``sum`` report (ESPnet's
``score_wer/result.txt``), ``mapsswe`` runs the matched-pairs test of ``sc_stats -t mapsswe``.
"""
