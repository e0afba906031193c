"""The size report (size.json) of a quantised model: file sizes, bits per parameter, FP32 rest."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict

from espnet_p4q.quant.apply import QuantReport


def fp_modules(report: QuantReport) -> Dict[str, int]:
    """Full-precision parameter counts grouped by owning module name."""
    grouped: Dict[str, int] = OrderedDict()
    for name, n in report.fp_params.items():
        owner = name.rsplit(".", 1)[0] if "." in name else name
        grouped[owner] = grouped.get(owner, 0) + n
    return dict(grouped)


def _bits_per_module(report: QuantReport) -> Dict[str, Dict[str, Any]]:
    """{module: nominal NormalFloat bits, weights, and stored bits per weight (scales included)}."""
    return {name: {"bits": b["bits"], "params": b["params"],
                   "stored_bits_per_param": round(8.0 * b["bytes"] / max(b["params"], 1), 4)}
            for name, b in report.module_bits.items()}


def size_report(
    report: QuantReport, fp32_file: Path, quantized_file: Path, fingerprint: str
) -> Dict[str, Any]:
    fp32_bytes = os.path.getsize(fp32_file)
    q_bytes = os.path.getsize(quantized_file)
    total = report.total_params
    fp_total = sum(report.fp_params.values())
    return {
        "fp32_file": str(fp32_file),
        "quantized_file": str(quantized_file),
        "fp32_bytes": fp32_bytes,
        "quantized_bytes": q_bytes,
        "ratio": round(fp32_bytes / q_bytes, 4),
        "total_params": total,
        "quantized_params": report.quantized_params,
        "fp_params": fp_total,
        "quantized_share": round(report.quantized_params / max(total, 1), 6),
        "bits_per_param": round(8.0 * q_bytes / max(total, 1), 4),
        "bits_per_quantized_param": round(report.bits_per_quantized_param, 4),
        "weights_memory_fp32_bytes": 4 * total,
        "weights_memory_quantized_bytes": report.weight_bytes,
        "weights_memory_ratio": round(4 * total / max(report.weight_bytes, 1), 4),
        "quantized_modules": report.quantized_modules,
        "bits_per_module": _bits_per_module(report),
        "fp32_modules": fp_modules(report),
        "fingerprint": fingerprint,
    }

