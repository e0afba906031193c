"""RESULTS.md from the dict of :mod:`espnet_p4q.report.results`.

Why separate from the numbers: formatting (rounding, dashes for what does not apply) must never
change what RESULTS.json holds.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

DASH = "—"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(v: Optional[float], fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _params(n: float) -> str:
    return f"{round(n):,}"


def _share(pct: float) -> str:
    return "0" if pct == 0 else f"{pct:.3g}"


def _table(header: List[str], rows: List[List[str]], align: str) -> List[str]:
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _rel(row: Dict[str, Any], key: str, base: str) -> str:
    return "ref." if row["name"] == base else _num(row[key], "+.1f")


def main_table(res: Dict[str, Any]) -> List[str]:
    ref, nf4, alpha = res["reference_system"], res["nf4_system"], res["alpha"]
    header = ["System", "WER (%)", f"Rel. vs `{ref}` (%)", f"Rel. vs `{nf4}` (%)", "Size (MB)",
              "Spk. params", "Spk. params (% of base)", "Adapt. time (s/spk)", "RTF",
              f"MAPSSWE Z vs `{nf4}`", "p", f"Signif. (p<{alpha:g})", "Better"]
    rows = []
    for r in res["systems"]:
        t = r["mapsswe_vs_nf4"]
        test = [DASH] * 4 if t is None else [
            f"{t['z']:+.2f}", fmt_p(t["p"]), "yes" if t["significant"] else "no",
            f"`{t['better']}`" if t["better"] else "tie"]
        rows.append([f"{r['label']} (`{r['name']}`)", _num(r["wer"], ".2f"),
                     _rel(r, "rel_wer_vs_reference", ref), _rel(r, "rel_wer_vs_nf4", nf4),
                     f"{r['size_mb']:.2f}", _params(r["speaker_params"]),
                     _share(r["speaker_params_percent"]), _num(r["adapt_seconds_mean"], ".1f"),
                     _num(r["rtf"], ".3f"), *test])
    return _table(header, rows, "lrrrrrrrrrrcl")


def column_notes(res: Dict[str, Any]) -> List[str]:
    n = len(res["speakers"]["reported"])
    nf4 = res["nf4_system"]
    notes = [
        f"WER: errors (substitutions + deletions + insertions) over reference words, pooled over "
        f"the {n} reported speakers (sclite's Sum/Avg row; {res['method']} alignment).",
        "Rel.: 100 x (WER - WER of the baseline) / WER of the baseline; negative = fewer errors.",
        "Size: the system's model files plus the mean over the reported speakers of the file "
        "each speaker keeps (see below); MB = 10^6 bytes.",
        "Spk. params: parameters stored per speaker (`adapter_params` of train.json: LoRA "
        "weights, or every weight for full fine-tuning), mean over speakers; % of the base "
        "model's parameters (`adapter_share`).",
        "Adapt. time: mean wall-clock seconds of one speaker's fine-tuning (`wall_seconds`).",
        "RTF: decoding seconds / audio seconds over the reported speakers' sets (decode.json).",
        f"MAPSSWE: matched-pairs sentence-segment word error test (as `sc_stats -t mapsswe`) of "
        f"each system (A) against `{nf4}` (B) on the utterances of all reported speakers; Z < 0: "
        f"A makes fewer errors; two-tailed p; Better: the system with fewer segment errors.",
    ]
    return [f"{i}. {t}" for i, t in enumerate(notes, 1)]


def size_notes(res: Dict[str, Any]) -> List[str]:
    out = []
    for r in res["systems"]:
        files = ", ".join(f"`{f}`" for f in r["model_files"])
        line = f"- `{r['name']}`: {files} ({r['model_bytes'] / 1e6:.2f} MB)"
        if r["speaker_file"]:
            line += (f" + mean `{r['speaker_dir']}/<spk>/{r['speaker_file']}` "
                     f"({r['speaker_file_bytes_mean'] / 1e6:.3f} MB)")
        else:
            line += "; nothing per speaker"
        out.append(line)
    return out


def speaker_text(res: Dict[str, Any]) -> List[str]:
    spk = res["speakers"]
    rep, tune = spk["reported"], spk["tuning"]
    scope = (f"{res['utterances']} utterances, {res['reference_words']} reference words")
    if spk["which"] == "eval":
        return [f"Reported: the {len(rep)} evaluation speakers of `{spk['reported_list']}` "
                f"({', '.join(rep)}; {scope}).",
                "",
                f"Hyperparameters (learning rate, steps, LoRA rank, ...) were chosen on the "
                f"{len(tune)} tuning speakers of `{spk['tuning_list']}` ({', '.join(tune)}), "
                "none of whom is reported here."]
    return [f"Reported: the {len(rep)} **tuning** speakers of `{spk['reported_list']}` "
            f"({', '.join(rep)}; {scope}).",
            "",
            "Hyperparameters were chosen on these same speakers, so these numbers are optimistic; "
            "held-out results are those of the evaluation speakers (`speakers: \"eval\"`)."]


def per_speaker_table(res: Dict[str, Any]) -> List[str]:
    names = [r["name"] for r in res["systems"]]
    header = ["Speaker", "Utts", "Words"] + [f"`{n}`" for n in names]
    rows = []
    for spk, ref in res["per_speaker_reference"].items():
        rows.append([spk, str(ref["utterances"]), str(ref["words"])] +
                    [_num(r["per_speaker"][spk]["wer"], ".2f") for r in res["systems"]])
    rows.append(["**Pooled**", str(res["utterances"]), str(res["reference_words"])] +
                [_num(r["wer"], ".2f") for r in res["systems"]])
    return _table(header, rows, "lrr" + "r" * len(names))


def mapsswe_table(res: Dict[str, Any]) -> List[str]:
    header = ["System A", "System B", "Sentences", "Segments", "Errors A", "Errors B",
              "Mean A-B", "SD", "Z", "p"]
    rows = []
    for r in res["systems"]:
        t = r["mapsswe_vs_nf4"]
        if t is not None:
            rows.append([f"`{t['name_a']}`", f"`{t['name_b']}`", str(t["n_sentences"]),
                         str(t["n_segments"]), str(t["errors_a"]), str(t["errors_b"]),
                         f"{t['mean_diff']:+.3f}", f"{t['sd']:.3f}", f"{t['z']:+.3f}",
                         fmt_p(t["p"])])
    return _table(header, rows, "llrrrrrrrr") if rows else ["(only one system)"]


def sweep_lines(res: Dict[str, Any], md_dir: str) -> List[str]:
    out = []
    for s in res["sweeps"]:
        csv = os.path.relpath(s["csv"], md_dir)
        line = f"- [{os.path.basename(csv)}]({csv})"
        if s.get("png"):
            png = os.path.relpath(s["png"], md_dir)
            name = os.path.basename(png)
            line += f", plot [{name}]({png})\n\n  ![{name}]({png})"
        out.append(line)
    return out


def render(res: Dict[str, Any], md_dir: str = ".", generator: str = "espnet_p4q") -> str:
    """The markdown text; links are made relative to ``md_dir`` (where the file goes)."""
    lines = [f"<!-- Generated by {generator} --manifest {res['manifest']}; edits are lost. -->",
             f"# {res['title'] or 'P4Q results'}", "", *speaker_text(res), "",
             "## Main results", "", *main_table(res), "", *column_notes(res), "",
             "Size on disk per system:", "", *size_notes(res), "",
             "## WER (%) per speaker", "", *per_speaker_table(res), "",
             f"## MAPSSWE against `{res['nf4_system']}`", "", *mapsswe_table(res), ""]
    if res["sweeps"]:
        lines += ["## Sweeps", "", *sweep_lines(res, md_dir), ""]
    if res["warnings"]:
        lines += ["## Notes", "", *[f"- {w}" for w in res["warnings"]], ""]
    return "\n".join(lines)
