#!/usr/bin/env bash
# synth_sa: synthetic speakers (Debian TTS voices and sox variants), speaker adaptation of an
# NF4-quantised Conformer/Transformer AED with per-speaker LoRA. Options of this corpus below;
# anything given on the command line overrides them (./run.sh --help lists all).
#   ./run.sh                          full size, starting from the base model that ships in
#                                     pretrained/synth_sa_base (trained by this recipe; see
#                                     pretrained/README.md): stages 3-5 import it, about 28 min
#   ./run.sh --pretrained_model ""    the same, training the base first (stage 5, about 68 min
#                                     more on 2 cores; reproduces pretrained/synth_sa_base)
#   ./run.sh --pretrained_model "" --local_data_opts "--config conf/data_ci.yaml" \
#       --train_config conf/train_ci.yaml --inference_config conf/decode_ci.yaml --nbpe 50 --n_adapt 0
#                                     CI size, a few minutes
set -euo pipefail

./p4q.sh \
  --local_data_opts "--config conf/data.yaml" \
  --train_set train \
  --valid_set dev \
  --token_type bpe \
  --bpemode unigram \
  --nbpe 158 \
  --train_config conf/train.yaml \
  --pretrained_model pretrained/synth_sa_base \
  --inference_config conf/decode.yaml \
  --adapt_systems "p4q p4q_unsup lora_scratch_nf4 fft_fp32 fft_nf4" \
  --systems "fp32 nf4 lora_pretrain_nf4 p4q p4q_unsup lora_scratch_nf4 fft_nf4 fft_fp32" \
  --n_adapt 30 \
  "$@"
