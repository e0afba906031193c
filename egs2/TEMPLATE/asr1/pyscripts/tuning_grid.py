"""Grid search on the tuning speakers, shared by tune_adapt.py and tune_decode.py: the options,
the grid, the speaker lists (evaluation speakers refused), the search loop and the result table."""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from espnet_p4q.cli import ArgumentParser
from espnet_p4q.fileio import InputError, read_id_list

Row = Tuple[Dict[str, float], float, Dict[str, float]]  # grid point, pooled WER, WER per speaker


def _number(text: str, item: str):
    for kind in (int, float):  # YAML would read 5e-4 as a string
        try:
            return kind(text)
        except ValueError:
            pass
    raise InputError(f"--grid: '{text}' in '{item}' is not a number")


def parse_grid(items: List[str]) -> List[Dict[str, float]]:
    keys, values = [], []
    for item in items:
        key, sep, vals = item.partition("=")
        if not sep or not vals:
            raise InputError(f"--grid: '{item}' is not KEY=V1,V2,...")
        keys.append(key)
        values.append([_number(v, item) for v in vals.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def tuning_parser(description: str, exp_help: str, grid_help: str) -> argparse.ArgumentParser:
    """The parser of a tuning script with the options both take: the experiment, the decoding
    config, the grid, the speaker lists and the output directory."""
    p = ArgumentParser(description=description)
    p.add_argument("--exp_dir", type=Path, required=True, help=exp_help)
    p.add_argument("--decode_config", type=Path, required=True, help="decoding YAML")
    p.add_argument("--grid", nargs="+", required=True, help=grid_help)
    p.add_argument("--data_dir", type=Path, default=Path("data"))
    p.add_argument("--tune_list", type=Path, default=Path("data/sa_tune.list"))
    p.add_argument("--eval_list", type=Path, default=Path("data/sa_eval.list"))
    p.add_argument("--output_dir", type=Path, required=True)
    return p


def start(parser: argparse.ArgumentParser, argv, tool: str) -> Tuple[argparse.Namespace, List[str]]:
    """The options parsed, logging as ``<time> [TOOL] message``, and the tuning speakers."""
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format=f"%(asctime)s [{tool}] %(message)s")
    return args, tuning_speakers(args.tune_list, args.eval_list)


def tuning_speakers(tune_list: Path, eval_list: Path) -> List[str]:
    """The tuning speakers; an evaluation speaker among them is an error (its numbers are reported)."""
    speakers = read_id_list(tune_list)
    evals = set(read_id_list(eval_list, allow_empty=True)) if eval_list.is_file() else set()
    if not speakers:
        raise InputError("no tuning speakers", tune_list)
    if evals & set(speakers):
        raise InputError(f"{', '.join(sorted(evals & set(speakers)))} are evaluation speakers ({eval_list}); "
                         "tuning on them is not allowed", tune_list)
    return speakers


def point_config(output_dir: Path, point: Mapping[str, float], base_conf: Mapping,
                 name: str) -> Tuple[str, Path, Path]:
    """The grid point's tag, its directory OUTPUT_DIR/<tag> and there the YAML NAME: base_conf with
    the point's values."""
    tag = "_".join(f"{k}{v}" for k, v in point.items())
    out = output_dir / tag
    out.mkdir(parents=True, exist_ok=True)
    conf = out / name
    conf.write_text(yaml.safe_dump({**base_conf, **point}, sort_keys=False), encoding="utf-8")
    return tag, out, conf


def decode_sets(decoder, data_dirs: Sequence[Path], output_dir: Path) -> None:
    """Decode each data dir into OUTPUT_DIR/<set>/text (the layout score_point reads)."""
    from espnet_p4q.decoding import decode_utterances
    from espnet_p4q.fileio import read_kaldi_table, write_text_atomic

    for d in data_dirs:
        scp = Path(d) / "wav.scp"
        wavs = read_kaldi_table(scp)
        hyps, _, _ = decode_utterances(decoder, wavs, read_kaldi_table(Path(d) / "utt2spk"), scp)
        write_text_atomic(output_dir / Path(d).name / "text",
                          "".join(f"{u} {hyps[u]}".rstrip() + "\n" for u in wavs))


def score_point(point: Mapping[str, float], decode_dir: Path, refs, label: str) -> Row:
    """Pooled and per-speaker WER of one grid point's decoding of the tuning speakers' test sets."""
    from espnet_p4q.report.wer import score_decoding, wer

    d = score_decoding(decode_dir, refs, label)
    return dict(point), wer(d.pooled), {s: wer(c) for s, c in d.counts.items()}


def write_table(rows: Sequence[Row], speakers: Sequence[str], output_dir: Path) -> str:
    """OUTPUT_DIR/tune.tsv: one row a grid point, pooled and per-speaker WER, the best marked '*'."""
    best = min(range(len(rows)), key=lambda i: rows[i][1])
    keys = list(rows[0][0])
    lines = ["\t".join(keys + ["wer"] + list(speakers) + ["best"])]
    for i, (point, pooled, per) in enumerate(rows):
        lines.append("\t".join([str(point[k]) for k in keys] + [f"{pooled:.2f}"]
                               + [f"{per[s]:.2f}" for s in speakers] + ["*" if i == best else ""]))
    table = "\n".join(lines) + "\n"
    (output_dir / "tune.tsv").write_text(table, encoding="utf-8")
    return table


def search(args, speakers: Sequence[str], base_conf: Mapping, conf_name: str,
           point_decoder: Callable[[Dict[str, float], Path, Path], object], label: str, log_prefix: str = "",
           grid_keys_of: Optional[Path] = None) -> int:
    """The search both scripts run. For each point of --grid: OUTPUT_DIR/<tag>/CONF_NAME (BASE_CONF
    with the point's values), POINT_DECODER(point, OUTPUT_DIR/<tag>, that file) gives the decoder,
    which decodes the tuning speakers' test sets into OUTPUT_DIR/<tag>/decode, scored as
    '<LABEL> <tag>'. Then the table (:func:`write_table`) is printed. With GRID_KEYS_OF (the file
    BASE_CONF was read from) the grid may only set keys BASE_CONF has."""
    from espnet_p4q.report.wer import read_references

    refs = read_references(args.data_dir, speakers)
    rows = []
    for point in parse_grid(args.grid):
        unknown = set(point) - set(base_conf) if grid_keys_of is not None else set()
        if unknown:
            raise InputError(f"--grid: {', '.join(sorted(unknown))} not among its options", grid_keys_of)
        tag, out, conf = point_config(args.output_dir, point, base_conf, conf_name)
        decode_sets(point_decoder(point, out, conf), [args.data_dir / f"{s}_test" for s in speakers], out / "decode")
        rows.append(score_point(point, out / "decode", refs, f"{label} {tag}"))
        logging.info("%s%s: WER %.2f%% over the tuning speakers", log_prefix, point, rows[-1][1])

    table = write_table(rows, speakers, args.output_dir)
    print(table, end="")
    return 0
