#!/usr/bin/env bash
# Build (or reuse) the project's virtual environment with pinned versions.
#
# Idempotent: a stamp file records the hash of the lock file and of this script; when it matches,
# nothing is installed. torch comes first as the CPU build (a plain 'torch' requirement would pull a
# CUDA build of several GB), then espnet without its dependencies (its setuptools<74 pin conflicts
# with torch 2.13), then everything else from the lock file with --no-deps, so that pip never
# resolves torch again.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: $0 [--venv DIR] [--with-system-packages true|false] [--relock]
  --venv DIR                  virtual environment to create or reuse (default: <repo>/venv)
  --with-system-packages B    also apt-get install the speech tools the recipes need (sox, flite,
                              festival voices, espeak-ng, sctk); default: true when root
  --relock                    resolve tools/requirements.in afresh and rewrite tools/requirements.lock
USAGE
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${P4Q_VENV:-$root/venv}
system_packages=auto
relock=false
need_value() { [ "$2" -ge 2 ] || { echo "$0: error: option $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --venv) need_value "$1" $#; venv=$2; shift 2 ;;
    --with-system-packages) need_value "$1" $#; system_packages=$2; shift 2 ;;
    --relock) relock=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$0: error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $system_packages in
  auto|true|false) ;;
  *) echo "$0: error: --with-system-packages takes true or false, not '$system_packages'" >&2; exit 2 ;;
esac

log() { echo "[install $(date +%H:%M:%S)] $*" >&2; }

PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.13.0
ESPNET_VERSION=202511
APT_PACKAGES="sox libsox-fmt-all flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sctk wordnet-base slurm-wlm munge"

# --- system packages (speech synthesis for the default corpus, NIST sclite for scoring checks)
if [ "$system_packages" = auto ]; then
  if [ "$(id -u)" = 0 ]; then system_packages=true; else system_packages=false; fi
fi
if [ "$system_packages" = true ]; then
  missing=""
  for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
  fi
fi

# --- Python environment
stamp=$venv/.p4q_install_stamp
want=$(cat "$root/tools/requirements.lock" "$root/tools/install.sh" "$root/setup.py" | sha256sum | cut -d' ' -f1)
if [ "$relock" = false ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "reusing $venv"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $PYTHON"
  "$PYTHON" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "torch==$TORCH_VERSION"
"$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" \
  || { echo "$0: torch $TORCH_VERSION did not install" >&2; exit 1; }
"${pip[@]}" install -q --no-deps "espnet==$ESPNET_VERSION"
# ci_sdr (imported by espnet's ASR task through its enhancement losses) declares a git URL extra that
# pip refuses for index packages; installed from its downloaded source archive it is accepted.
if ! "$venv/bin/python" -c "import ci_sdr" 2>/dev/null; then
  dl=$(mktemp -d)
  "${pip[@]}" download -q --no-deps --no-binary :all: -d "$dl" ci_sdr==0.0.0
  "${pip[@]}" install -q --no-deps "$dl"/ci_sdr-*
  rm -rf "$dl"
fi
if [ "$relock" = true ]; then
  constraints=$(mktemp); echo "torch==$TORCH_VERSION" > "$constraints"
  "${pip[@]}" install -q -c "$constraints" -r "$root/tools/requirements.in"
  rm -f "$constraints"
  { sed -n '1,2p' "$root/tools/requirements.lock"
    "${pip[@]}" freeze --exclude-editable | grep -viE "^(torch|espnet|espnet-p4q|ci.sdr)==" ; } > "$root/tools/requirements.lock.tmp"
  mv "$root/tools/requirements.lock.tmp" "$root/tools/requirements.lock"
  want=$(cat "$root/tools/requirements.lock" "$root/tools/install.sh" "$root/setup.py" | sha256sum | cut -d' ' -f1)
else
  "${pip[@]}" install -q --no-deps -r "$root/tools/requirements.lock"
fi
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$root"
# torchaudio's wheel on PyPI ships CUDA-linked extensions that cannot load beside the CPU torch, and
# its import fails while they are present. espnet's ASR task only needs its pure-Python parts
# (compliance.kaldi, transforms): without the libraries torchaudio imports in pure-Python mode.
ta_lib=$("$venv/bin/python" -c "import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec('torchaudio').origin), 'lib'))")
rm -f "$ta_lib"/*.so
# espnet's ASR task imports g2p_en (phoneme tokenisers, unused with BPE), which tries to download
# NLTK data at import time in every process. Empty placeholders where NLTK looks first
# (<venv>/nltk_data) stop those network attempts; a phoneme tokeniser would need the real data.
mkdir -p "$venv/nltk_data/taggers" "$venv/nltk_data/corpora"
for z in taggers/averaged_perceptron_tagger_eng.zip corpora/cmudict.zip; do
  [ -s "$venv/nltk_data/$z" ] || "$venv/bin/python" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').close()" "$venv/nltk_data/$z"
done
# torch must still be the CPU build we asked for
"$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__ == '$TORCH_VERSION+cpu' or not torch.version.cuda else 1)" \
  || { echo "$0: a CUDA build of torch replaced the CPU build" >&2; exit 1; }
"$venv/bin/python" -c "import espnet2.tasks.asr, espnet2.bin.asr_train, espnet2.bin.asr_inference, bitsandbytes, loralib, kaldiio, jiwer, sentencepiece" >/dev/null 2>&1 \
  || { echo "$0: the environment does not import its packages" >&2; exit 1; }
echo "$want" > "$stamp"
log "environment ready: $venv"
