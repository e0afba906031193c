#!/usr/bin/env python3
"""Train a sentencepiece model on a plain text file (one sentence per line).

    spm_train.py --input TEXT --model_prefix DIR/bpe --vocab_size N [--model_type unigram|bpe]

Writes DIR/bpe.model and DIR/bpe.vocab. Sentencepiece's own control pieces are kept as its
defaults (<unk>=0, <s>=1, </s>=2); the ESPnet token list is made from the model afterwards by
espnet2.bin.tokenize_text, which adds <blank>, <unk> and <sos/eos> itself.
"""

from __future__ import annotations

import sys

import sentencepiece as spm

from espnet_p4q.cli import ArgumentParser, guarded


@guarded("spm_train.py")
def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True)
    p.add_argument("--model_prefix", required=True)
    p.add_argument("--vocab_size", type=int, required=True)
    p.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--input_sentence_size", type=int, default=100_000_000)
    p.add_argument("--user_defined_symbols", default="",
                   help="comma-separated pieces never split (e.g. non-linguistic symbols)")
    args = p.parse_args(argv)
    kwargs = dict(
        input=args.input,
        model_prefix=args.model_prefix,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        character_coverage=args.character_coverage,
        input_sentence_size=args.input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=1,
    )
    if args.user_defined_symbols:
        kwargs["user_defined_symbols"] = args.user_defined_symbols.split(",")
    spm.SentencePieceTrainer.train(**kwargs)


if __name__ == "__main__":
    sys.exit(main())
