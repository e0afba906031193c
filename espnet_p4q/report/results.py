"""The numbers of RESULTS.md/RESULTS.json, as one JSON-ready dict.

Why one dict: the markdown and the JSON must show the same numbers, so both are made from this.
Relative changes are ``100 * (WER - WER_base) / WER_base`` (negative = fewer errors); MAPSSWE
compares every system (A) with the NF4 system (B) on the utterances of all reported speakers.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from espnet_p4q.report.facts import adaptation, decoding_rtf, size_on_disk
from espnet_p4q.report.json_fields import ReportError
from espnet_p4q.report.manifest import Manifest
from espnet_p4q.report.speakers import LIST_FILES, speaker_lists
from espnet_p4q.report.wer import pool, read_references, score_decoding, wer
from espnet_p4q.scoring.mapsswe import mapsswe
from espnet_p4q.scoring.trn import TranscriptError

MB = 1e6


def relative_change(value: Optional[float], base: Optional[float]) -> Optional[float]:
    """Percent change of ``value`` against ``base``; None where undefined (no or zero base)."""
    if value is None or base is None or base == 0:
        return None
    return 100.0 * (value - base) / base


def build_results(manifest: Manifest, method: str = "sclite", alpha: float = 0.05,
                  allow_missing_hyp: bool = False, title: Optional[str] = None) -> Dict[str, Any]:
    """Score every system of ``manifest`` and gather its facts."""
    reported, tuning = speaker_lists(manifest.data_dir, manifest.speakers)
    refs = read_references(manifest.data_dir, reported)
    ref_pooled = pool(refs, str(manifest.data_dir))
    decodings = {s.name: score_decoding(s.decode_dir, refs, f"system '{s.name}'", method,
                                        allow_missing_hyp) for s in manifest.systems}
    pooled_wer = {n: wer(d.pooled) for n, d in decodings.items()}
    nf4 = manifest.nf4_system
    warnings, rows = [], []
    for spec in manifest.systems:
        dec = decodings[spec.name]
        counts = dec.pooled
        size = size_on_disk(spec, reported)
        adapt = adaptation(spec, reported)
        rtf, no_rtf = decoding_rtf(spec.decode_dir, reported)
        if no_rtf:
            warnings.append(f"system '{spec.name}': no RTF, {len(no_rtf)} decode.json file(s) "
                            f"missing (e.g. {no_rtf[0]})")
        test = None
        if spec.name != nf4:
            try:
                test = mapsswe(ref_pooled, dec.hyps, decodings[nf4].hyps, spec.name, nf4,
                               alpha=alpha, method=method).as_dict()
            except TranscriptError as e:
                raise ReportError(f"{spec.decode_dir}: cannot compare system '{spec.name}' with "
                                  f"'{nf4}' ({manifest.system(nf4).decode_dir}): {e}") from e
        rows.append({
            "name": spec.name, "label": spec.label, "decode_dir": str(spec.decode_dir),
            "wer": pooled_wer[spec.name], "errors": counts.err, "words": counts.n_wrd,
            "sentences": counts.n_snt, "counts": counts.as_dict(),
            "rel_wer_vs_reference": relative_change(pooled_wer[spec.name],
                                                    pooled_wer[manifest.reference_system]),
            "rel_wer_vs_nf4": relative_change(pooled_wer[spec.name], pooled_wer[nf4]),
            "size_mb": size.total_bytes / MB, "size_bytes": size.total_bytes,
            "model_files": [str(f) for f in spec.model_files], "model_bytes": size.model_bytes,
            "speaker_dir": str(spec.speaker_dir) if spec.speaker_dir else None,
            "speaker_file": size.speaker_file, "speaker_file_bytes_mean": size.speaker_bytes_mean,
            "speaker_params": adapt.params if adapt else 0,
            "speaker_params_percent": 100.0 * adapt.share if adapt else 0.0,
            "base_params": adapt.base_params if adapt else None,
            "adapt_seconds_mean": adapt.wall_seconds if adapt else None,
            "adapt_steps_mean": adapt.steps if adapt else None,
            "adapt_utterances_mean": adapt.utterances if adapt else None,
            "rtf": rtf,
            "mapsswe_vs_nf4": test,
            "per_speaker": {spk: {"wer": wer(c), "errors": c.err, "words": c.n_wrd,
                                  "sentences": c.n_snt} for spk, c in dec.counts.items()},
        })
    return {
        "title": title, "manifest": str(manifest.path), "data_dir": str(manifest.data_dir),
        "speakers": {
            "which": manifest.speakers, "reported": reported,
            "reported_list": str(manifest.data_dir / LIST_FILES[manifest.speakers]),
            "tuning": tuning, "tuning_list": str(manifest.data_dir / LIST_FILES["tune"]),
        },
        "per_speaker_reference": {spk: {"utterances": len(r),
                                        "words": sum(len(w) for w in r.values())}
                                  for spk, r in refs.items()},
        "utterances": len(ref_pooled),
        "reference_words": sum(len(w) for w in ref_pooled.values()),
        "reference_system": manifest.reference_system, "nf4_system": nf4,
        "alpha": alpha, "method": method, "allow_missing_hyp": allow_missing_hyp,
        "systems": rows, "warnings": warnings, "sweeps": [],
    }
