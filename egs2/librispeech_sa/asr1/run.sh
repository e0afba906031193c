#!/usr/bin/env bash
# librispeech_sa: speaker adaptation of an NF4-quantised Conformer AED with per-speaker LoRA (P4Q)
# on LibriSpeech, paper scale: base model on train-clean-100, 10 held-out readers of
# train-clean-360 (conf/sa_speakers.txt; 2 tune, 8 report, conf/sa_split.yaml). Options of this
# corpus below, after those both paper-scale recipes share (../../TEMPLATE/asr1/paper_scale.conf);
# anything given on the command line overrides them (./run.sh --help lists all).
#
#   ./run.sh                                   stages 1-11: data (downloads ~30 GB unless db.sh /
#                                              $LIBRISPEECH points at a copy), tokens, stats, base
#                                              training (70 epochs), NF4, LoRA, adaptation, decoding,
#                                              scoring, the P4Q table in RESULTS.md
#   ./run.sh --stage 5 --stop_stage 5          one stage (README.md: every stage, its time)
#   ./run.sh --pretrained_model DIR            start from a trained ESPnet model instead of training
#                                              one (stage 5 imports it; stages 3-4 are skipped): an
#                                              unpacked ESPnet model-zoo archive (meta.yaml, exp/...)
#                                              or an exp dir with config.yaml + a .pth
#                                              (--pretrained_model_file NAME picks one of several)
#   ./run.sh --stage 12 --stop_stage 13        the optional sweeps (utterances, LoRA rank)
#
# GPU: p4q.sh uses one when nvidia-smi sees it (--ngpu 1; --ngpu 0 forces the CPU) for base
# training, LoRA pretraining and adaptation; add --gpu_inference true to decode on it too.
# Training is planned for one 80 GB GPU (conf/train.yaml: batch_bins, AMP).
#
# Audio: --audio path makes wav.scp list the .flac files themselves: espnet2's 'sound' reader
# (training, collect_stats, decoding) opens files with soundfile and cannot run 'cmd |' pipes.
# Speaker adaptation follows the P4Q authors' partition (--sa_partition paper of local/data.sh,
# conf/sa_partition.tsv): data/ls<R>_adapt is a reader's whole train split (58-74 utterances),
# data/ls<R>_test its test split, so p4q.sh's --n_adapt 0 adapts on all of it; the utterance sweep
# (stage 12) takes the first N of it, N up to 58 (the smallest split).
set -euo pipefail

./p4q.sh \
  --config ../../TEMPLATE/asr1/paper_scale.conf \
  --local_data_opts "--audio path --sa_partition paper" \
  --nbpe 5000 \
  "$@"
