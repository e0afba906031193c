#!/usr/bin/env bash
# synth_sa_whisper: the synth_sa corpus (the same speakers, sentences and audio: its own
# local/data.sh and conf/data.yaml, audio synthesised once under ../../synth_sa/asr1/downloads),
# plus smaller training and dev sets for Whisper base on a CPU:
#   data/train_w<N>: the first N utterances of every training speaker (LoRA pretraining, stage 7);
#   data/dev_w1:     one utterance of every training speaker (decoded by stage 9 as --valid_set).
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [options]
  --config FILE              synth_sa data config (default: ../../synth_sa/asr1/conf/data.yaml;
                             CI size: ../../synth_sa/asr1/conf/data_ci.yaml)
  --download_dir DIR         where the audio goes (default: ../../synth_sa/asr1/downloads, shared)
  --train_per_speaker N      training utterances per training speaker in data/train_w<N> (default: 10)
  --nj N                     parallel synthesis processes (default: 2)
Run from egs2/synth_sa_whisper/asr1.
USAGE
}

synth=../../synth_sa/asr1
config=$synth/conf/data.yaml
download_dir=$synth/downloads
train_per_speaker=10
nj=2
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --config|--download_dir|--train_per_speaker|--nj)
      [ $# -ge 2 ] || { echo "$0: error: $1 needs a value" >&2; exit 2; }
      printf -v "${1#--}" '%s' "$2"; shift 2 ;;
    *) echo "$0: error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $train_per_speaker =~ ^[1-9][0-9]*$ ]] ||
  { echo "$0: error: --train_per_speaker takes a positive integer, not '$train_per_speaker'" >&2; exit 2; }
[ -f "$config" ] || { echo "$0: error: no data config $config" >&2; exit 1; }

"$synth/local/data.sh" --config "$config" --download_dir "$download_dir" --data_dir data --nj "$nj"
python ../../../local/kaldi_subset.py --src data/train --dst "data/train_w$train_per_speaker" \
  --per_speaker "$train_per_speaker"
python ../../../local/kaldi_subset.py --src data/dev --dst data/dev_w1 --per_speaker 1
