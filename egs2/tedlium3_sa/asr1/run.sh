#!/usr/bin/env bash
# tedlium3_sa: speaker adaptation of an NF4-quantised Conformer AED with per-speaker LoRA (P4Q)
# on TED-LIUM 3, paper scale: base model on the ~452 h of training talks, 16 held-out talks
# (conf/sa_talks.txt; 4 tune, 12 report, conf/sa_split.yaml). Options of this corpus below, after
# those both paper-scale recipes share (../../TEMPLATE/asr1/paper_scale.conf); anything given on
# the command line overrides them (./run.sh --help lists all).
#
#   ./run.sh                                   stages 1-11: data (downloads 51 GB unless db.sh /
#                                              $TEDLIUM3 points at a copy), tokens, stats, base
#                                              training (35 epochs), NF4, LoRA, adaptation, decoding,
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
# Data options (local/data.sh --help):
#   --dump_dir dump/audio  cuts every segment into its own flac file (local/data.sh stage 4, ~27 GB
#                          for the training talks): espnet2's 'sound' reader (training, collect_stats,
#                          decoding) reads plain files only, neither Kaldi segments nor 'cmd |' pipes.
#   --unk drop             removes TED-LIUM's <unk> from the transcripts: the pipeline's
#                          sentencepiece model has no user-defined symbols, so a kept <unk> would
#                          map to sentencepiece's unknown piece and decode as ' ⁇ ', an error even
#                          where the reference has <unk>.
#   --sa_partition paper   the P4Q authors' partition (conf/sa_partition.tsv): data/<talk>_adapt is
#                          a talk's whole train split (46-77 segments), data/<talk>_test its test
#                          split, so p4q.sh's --n_adapt 0 adapts on all of it; the utterance sweep
#                          (stage 12) takes the first N of it, N up to 46 (the smallest split).
set -euo pipefail

./p4q.sh \
  --config ../../TEMPLATE/asr1/paper_scale.conf \
  --local_data_opts "--dump_dir dump/audio --dump_nj 16 --unk drop --sa_partition paper" \
  --nbpe 500 \
  "$@"
