"""Per-module quantisation sensitivity (KL divergence of output posteriors), as a CSV table.

Why: Conformer components differ widely in how much quantisation hurts them (Li et al.,
Interspeech 2023); a module's sensitivity at k bits is measured as the KL divergence from the FP32
model's posteriors to those of the FP32 model with only that module at k bits. Both outputs an
ESPnet AED decodes with count: the CTC posteriors per encoder frame and the attention decoder's
teacher-forced posteriors per output token. The table feeds :mod:`espnet_p4q.quant.allocate`.
Measure on tuning data only (never an evaluation set): the allocation is a hyper-parameter.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import asdict, dataclass, fields
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

from espnet_p4q.fileio import InputError, write_text_atomic
from espnet_p4q.patterns import replace_module, select_modules
from espnet_p4q.quant.config import BIT_WIDTHS, QuantConfig
from espnet_p4q.quant.kbit import code_key
from espnet_p4q.quant.kbit_layers import is_kbit, quantize_module_kbit
from espnet_p4q.quant.layers import QUANTIZABLE_TYPES, quantize_module

_log = logging.getLogger(__name__)
Batch = Union[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],  # speech, lengths, ys, ys lengths
              Mapping[str, torch.Tensor]]  # or espnet2's collated dict (train.data.UtteranceSet.batches)


def _as_tuple(batch: Batch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        return batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"]
    return tuple(batch)  # type: ignore[return-value]


@dataclass
class SensitivityRow:
    """One (module, bits) measurement; ``stored_bits`` counts codes and scales per weight."""

    module: str
    bits: int
    params: int
    stored_bits: float
    kl_ctc: float
    kl_att: float

    @property
    def kl(self) -> float:
        return self.kl_ctc + self.kl_att


def log_posteriors(model: torch.nn.Module, batch: Batch,
                   encoded: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> Tuple[torch.Tensor, ...]:
    """(CTC log-posteriors, frame mask, teacher-forced decoder log-posteriors, token mask) of an ESPnet AED.

    Without a CTC branch the CTC part is a constant (KL 0). ``encoded``: the batch's (encoder
    output, lengths) when already known, so that only the heads run.
    """
    speech, lens, ys, ys_lens = _as_tuple(batch)
    enc, enc_lens = encoded if encoded is not None else model.encode(speech, lens)
    frames = torch.arange(enc.size(1))[None, :] < enc_lens[:, None]
    if getattr(model, "ctc", None) is not None:
        ctc = model.ctc.log_softmax(enc)
    else:  # attention-only models (ctc_weight 0, e.g. Whisper): no CTC divergence
        ctc, frames = enc.new_zeros(enc.shape[:2] + (1,)), torch.ones_like(frames)
    pad = torch.arange(ys.size(1))[None, :] >= ys_lens[:, None]
    ys_in, _ = add_sos_eos(ys.masked_fill(pad, model.ignore_id), model.sos, model.eos, model.ignore_id)
    logits, _ = model.decoder(enc, enc_lens, ys_in, ys_lens + 1)
    tokens = torch.arange(ys_in.size(1))[None, :] < (ys_lens + 1)[:, None]
    return ctc, frames, torch.log_softmax(logits, dim=-1), tokens


HEADS = ("decoder.", "ctc.")  # modules under these names leave the encoder output as it is


def after_encoder(name: str) -> bool:
    """True for a module that only the heads use (its quantisation cannot change ``model.encode``)."""
    return name.startswith(HEADS)


def mean_kl(ref_log: torch.Tensor, log: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over the masked positions of KL(ref || other), both given as log-probabilities."""
    kl = (ref_log.exp() * (ref_log - log)).sum(-1)
    return float(kl[mask].mean())


def _stored_bits(module: torch.nn.Module) -> float:
    """Bits per weight of a packed module's own tensors (codes, scales; shared code books left out)."""
    if is_kbit(module):
        shared = {code_key(module.bits), "nested_quant_map"}
        tensors = [t for k, t in module.packed_tensors().items() if k not in shared]
        numel = module.kstate.shape.numel()
    else:
        qs = module.weight.quant_state
        tensors = [module.weight.data, qs.absmax] + ([qs.state2.absmax] if qs.nested else [])
        numel = qs.shape.numel()
    return 8.0 * sum(t.numel() * t.element_size() for t in tensors) / numel


def quantize_one(module: torch.nn.Module, bits: int, cfg: QuantConfig) -> torch.nn.Module:
    """The packed replacement of ``module`` at ``bits`` with ``cfg``'s block size and scales."""
    if bits == 4:
        return quantize_module(module, cfg)
    return quantize_module_kbit(module, bits, cfg.blocksize, cfg.double_quant, cfg.compute_dtype)


@torch.no_grad()
def measure_sensitivity(model: torch.nn.Module, cfg: QuantConfig, batches: Sequence[Batch],
                        widths: Iterable[int] = BIT_WIDTHS) -> List[SensitivityRow]:
    """Rows for every target of ``cfg`` (targets/exclude) and every width, one module quantised at a time.

    ``model`` is an FP32 ESPnet AED; it is restored (same module objects) before returning.
    ``batches``: (speech, lengths, token ids, token lengths) tuples or espnet2's collated dicts.
    KL values are averaged over batches weighted by their number of frames / tokens. For a decoder
    or CTC module the FP32 encoder outputs are reused (most of Whisper's targets: the encoder runs
    once, not once per module and width).
    """
    model.eval()
    widths = tuple(widths)
    targets = select_modules(model, cfg.targets, QUANTIZABLE_TYPES, exclude=cfg.exclude, what="quantisation target")
    encoded = [model.encode(*_as_tuple(b)[:2]) for b in batches]
    refs = [log_posteriors(model, b, e) for b, e in zip(batches, encoded)]
    n_frames = sum(int(r[1].sum()) for r in refs)
    n_tokens = sum(int(r[3].sum()) for r in refs)
    rows = []
    for i, (name, original) in enumerate(targets.items(), 1):
        for bits in widths:
            packed = quantize_one(original, bits, cfg)
            replace_module(model, name, packed)
            try:
                kl_ctc = kl_att = 0.0
                for batch, enc, (ctc, frames, att, tokens) in zip(batches, encoded, refs):
                    q_ctc, _, q_att, _ = log_posteriors(model, batch, enc if after_encoder(name) else None)
                    kl_ctc += mean_kl(ctc, q_ctc, frames) * int(frames.sum()) / n_frames
                    kl_att += mean_kl(att, q_att, tokens) * int(tokens.sum()) / n_tokens
            finally:
                replace_module(model, name, original)
            rows.append(SensitivityRow(name, bits, int(original.weight.numel()),
                                       round(_stored_bits(packed), 6), kl_ctc, kl_att))
        _log.info("%d/%d %s: KL %s", i, len(targets), name,
                  ", ".join(f"{r.bits} bits {r.kl:.3g}" for r in rows[-len(widths):]))
    log_extremes(rows)
    return rows


def log_extremes(rows: Sequence[SensitivityRow], n: int = 5) -> None:
    """Log the modules most and least sensitive at the lowest measured width."""
    if not rows:
        return
    low = min(r.bits for r in rows)
    ranked = sorted((r for r in rows if r.bits == low), key=lambda r: r.kl, reverse=True)
    fmt = ", ".join
    _log.info("most sensitive at %d bits: %s", low, fmt(f"{r.module} ({r.kl:.3g})" for r in ranked[:n]))
    _log.info("least sensitive at %d bits: %s", low, fmt(f"{r.module} ({r.kl:.3g})" for r in ranked[-n:]))


_COLUMNS = [f.name for f in fields(SensitivityRow)] + ["kl"]


def write_table(rows: Sequence[SensitivityRow], path: os.PathLike) -> None:
    """The table as CSV (module, bits, params, stored_bits, kl_ctc, kl_att, kl), written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    for r in rows:
        w.writerow([*asdict(r).values(), r.kl])
    write_text_atomic(path, buf.getvalue())


def read_table(path: os.PathLike) -> List[SensitivityRow]:
    """Rows of a :func:`write_table` CSV; a malformed row is an InputError naming file and line."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != _COLUMNS:
            raise InputError(f"expected the columns {','.join(_COLUMNS)}", path, 1)
        for rec in reader:
            try:
                rows.append(SensitivityRow(rec["module"], int(rec["bits"]), int(rec["params"]),
                                           float(rec["stored_bits"]), float(rec["kl_ctc"]), float(rec["kl_att"])))
            except (TypeError, ValueError) as e:
                raise InputError(f"bad sensitivity row ({e})", path, reader.line_num) from None
    return rows


def by_module(rows: Sequence[SensitivityRow]) -> Dict[str, Dict[int, SensitivityRow]]:
    """{module: {bits: row}} in first-seen module order."""
    out: Dict[str, Dict[int, SensitivityRow]] = {}
    for r in rows:
        out.setdefault(r.module, {})[r.bits] = r
    return out
