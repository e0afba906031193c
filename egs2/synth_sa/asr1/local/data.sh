#!/usr/bin/env bash
# Build the synthetic speaker-adaptation corpus (synth_sa) offline, deterministically from a seed.
#
# Sentences: WordNet examples (wordnet-base). Voices: flite / festival voices and sox variants of
# them; held-out speakers are new variants outside the training box (see conf/data.yaml and
# local/README.md). Audio: <download_dir>/<corpus>_<digest>/ (16 kHz mono 16-bit wav); data dirs:
# <data_dir>/{train,dev,<spk>_adapt,<spk>_test}, <data_dir>/sa_{tune,eval}.list,
# <data_dir>/corpus_stats.json. Re-running resumes: finished audio is never synthesised again.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [options]
  --config FILE              data config (default: conf/data.yaml; CI size: conf/data_ci.yaml)
  --seed N                   override the config's seed
  --nj N                     parallel synthesis processes (default: 2)
  --n_adapt_pool N           adaptation utterances per held-out speaker (config default: 50)
  --n_test N                 test utterances per held-out speaker (config default: 40)
  --n_train_per_spk N        training utterances per training speaker
  --variants_per_voice N     sox variants per natural voice in training
  --data_dir DIR             where data dirs go (default: data)
  --download_dir DIR         where audio goes (default: downloads)
  --log FILE                 append progress to FILE instead of stdout
  --plan_only true|false     only write <data_dir>/local/plan.json (texts and ids), no audio
Run from egs2/synth_sa/asr1. Needs sox, flite, festival (+ voices), wordnet-base: tools/install.sh.
USAGE
}

config=conf/data.yaml
seed=
nj=2
n_adapt_pool=
n_test=
n_train_per_spk=
variants_per_voice=
data_dir=data
download_dir=downloads
log=
plan_only=false

while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --config|--seed|--nj|--n_adapt_pool|--n_test|--n_train_per_spk|--variants_per_voice|\
    --data_dir|--download_dir|--log|--plan_only)
      [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
      printf -v "${1#--}" '%s' "$2"; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

# Paths given relative to the caller's directory stay valid after moving to the recipe dir.
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s' "$PWD/$1" ;; esac; }
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo_root=$(cd "$recipe_dir/../../.." && pwd)
config=$(abspath "$config")
data_dir=$(abspath "$data_dir")
download_dir=$(abspath "$download_dir")
[ -n "$log" ] && log=$(abspath "$log")
cd "$recipe_dir"
# The recipe's path.sh (when there) activates the project's venv and puts it on PYTHONPATH.
if [ -f path.sh ]; then
  set +u
  # shellcheck disable=SC1091
  . ./path.sh
  set -u
fi

for tool in sox flite festival; do
  command -v "$tool" >/dev/null || { echo "$0: '$tool' not found; run tools/install.sh" >&2; exit 1; }
done
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo_root/venv/bin/python" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
    PYTHON=$repo_root/venv/bin/python
  else
    PYTHON=python3
  fi
fi
[ -d "$repo_root/espnet_p4q" ] && export PYTHONPATH=$repo_root${PYTHONPATH:+:$PYTHONPATH}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

args=(--config "$config" --nj "$nj" --data_dir "$data_dir" --download_dir "$download_dir")
[ -n "$seed" ] && args+=(--seed "$seed")
[ -n "$n_adapt_pool" ] && args+=(--n_adapt_pool "$n_adapt_pool")
[ -n "$n_test" ] && args+=(--n_test "$n_test")
[ -n "$n_train_per_spk" ] && args+=(--n_train_per_spk "$n_train_per_spk")
[ -n "$variants_per_voice" ] && args+=(--variants_per_voice "$variants_per_voice")
[ -n "$log" ] && args+=(--log "$log")
[ "$plan_only" = true ] && args+=(--plan_only)

exec "$PYTHON" local/build_corpus.py "${args[@]}"
