#!/usr/bin/env bash
# p4q.sh: the staged pipeline shared by every egs2/<corpus>/asr1 recipe of espnet-p4q.
#
# A corpus directory holds only what differs (local/data.sh, conf/, run.sh with its options) and
# calls this script, linked as ./p4q.sh. Run it from the recipe directory: './p4q.sh --help' lists
# the stages and options. Everything it makes lies under data/, exp/ and RESULTS.md.
#
# Resuming: every stage marks finished work with a '.done' file written after its outputs are in
# place (outputs are built under a temporary name and renamed, so no reader sees half of them).
# A restarted run skips what is marked and redoes what is not; training resumes from espnet2's last
# epoch checkpoint. Each marker records a signature of the stage's inputs and options: when they
# have changed, stages 1-4 and 9-10 redo their work, stage 5 (training) only warns (remove
# exp/asr_<tag> to retrain). --skip_done false redoes every stage in the range.
#
# Extending: a new system of the comparison (base, per-speaker part, how it is trained) is one
# entry of the registry, conf/systems.yaml (--systems_conf), which stages 8-13, the tuning scripts
# and the report all read; a new stage is a function stage_<name> registered with
# 'add_stage N name "what it does"' next to the others below.
set -euo pipefail

p4q_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
pyscripts=$p4q_dir/pyscripts
utils=$p4q_dir/utils
_cmdline="$0 $*"

log() {
  echo "$(date '+%Y-%m-%dT%H:%M:%S') (p4q.sh:${BASH_LINENO[0]}) $*" >&2
}
die() {
  log "ERROR: $*"
  exit 1
}

# ------------------------------------------------------------------------------------------------
# Options: 'opt NAME DEFAULT HELP' sets the default and documents it for --help.
declare -a _opt_order=()
declare -A _opt_help=() _opt_section=()
_section=General
section() { _section=$1; }
opt() {
  printf -v "$1" '%s' "$2"
  _opt_order+=("$1")
  _opt_help[$1]=$3
  _opt_section[$1]=$_section
}

_detected_ngpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  _detected_ngpu=1
fi

section General
opt stage 1 "first stage to run"
opt stop_stage 11 "last stage to run (12-13 are the optional sweeps)"
opt skip_done true "skip work marked done by an earlier run (false: redo every stage in the range)"
opt expdir exp "directory for models, statistics, decodes and logs"
opt cmd_backend local "job backend of cmd.sh: local (parallel processes here) or slurm"
opt nj 4 "parallel jobs of collect_stats (stage 4)"
opt inference_nj 4 "parallel decoding jobs (stage 9); each job loops over several sets in one process"
opt ngpu "$_detected_ngpu" "GPUs for training (default: 1 when nvidia-smi sees a GPU, else 0)"
opt gpu_inference false "decode on a GPU"
opt num_workers 1 "data loader workers of espnet2 training"
opt train_threads "$(nproc)" "torch threads of the single-process training stages 5 and 7 on the CPU (OMP_NUM_THREADS; path.sh sets 1 for the parallel jobs of the others)"
opt seed 0 "random seed of training"
opt python python "python interpreter (path.sh puts the project's venv first on PATH)"
opt check_only false "check the option values and exit (nothing runs)"

section Data
opt local_data_opts "" "options passed to local/data.sh (stage 1)"
opt train_set train "training data dir under data/"
opt valid_set dev "validation data dir under data/ (also decoded and scored)"
opt test_sets "" "data dirs to decode and score (default: valid_set and <spk>_test for every speaker in the two lists below)"
opt sa_tune_list data/sa_tune.list "speakers for tuning the adaptation (one id per line)"
opt sa_eval_list data/sa_eval.list "speakers the adaptation is evaluated on (one id per line)"
opt fs 16k "sampling rate of the audio"
opt validate_pipe_fraction 1 "share (0-1] of the 'cmd |' audio entries that stage 2 runs and checks (1: all; less for very large corpora)"

section Tokens
opt token_type bpe "bpe (sentencepiece) or char"
opt nbpe 150 "sentencepiece vocabulary size"
opt bpemode unigram "sentencepiece model type: unigram or bpe"
opt bpe_train_text "" "text (one sentence per line) to train sentencepiece on (default: the training set's transcripts)"
opt token_listdir data/token_list "where token lists are written"

section Training
opt train_config "" "espnet2 training config (stages 4 and 5)"
opt asr_tag "" "name of the experiment: exp/asr_<tag> (default: <train_config name>_<token type>)"
opt asr_stats_dir "" "statistics dir (default: exp/asr_stats_<train_config name>_<token type>)"
opt asr_args "" "extra options for espnet2.bin.asr_train, e.g. '--max_epoch 30'"
opt feats_normalize global_mvn "feature normalisation: global_mvn (with stage 4's statistics), utterance_mvn or none"
opt inference_asr_model valid.acc.ave.pth "espnet2 model file that becomes exp/asr_<tag>/base.pth"
opt pretrained_model "" "directory of a trained ESPnet model (config.yaml + .pth, or an unpacked pack with meta.yaml), or whisper:NAME (OpenAI's Whisper, rebuilt offline: espnet_p4q.bin.build_whisper): stage 5 imports it instead of training, stages 3-4 are skipped"
opt pretrained_model_file "" "model file inside --pretrained_model when it holds several"
opt whisper_cache "" "cache of rebuilt Whisper checkpoints for --pretrained_model whisper:NAME (default: <expdir>/whisper)"

section "P4Q (stages 6-8, 11)"
opt systems_conf "\$p4q_root/conf/systems.yaml" "the registry of systems: the comparison's rows, how each is trained (stage 8) and decoded"
opt quant_conf "\$p4q_root/conf/quant/nf4.yaml" "NF4 quantisation targets and block size (stage 6)"
opt lora_conf "\$p4q_root/conf/lora/rank4.yaml" "LoRA rank, alpha and targets of the pretrained and per-speaker adapters"
opt lora_pretrain_config conf/lora_pretrain.yaml "optimisation of LoRA pretraining on --train_set (stage 7)"
opt adapt_lora_config conf/adapt_lora.yaml "optimisation of per-speaker LoRA from the pretrained adapter (P4Q, stage 8)"
opt adapt_scratch_config conf/adapt_lora_scratch.yaml "optimisation of per-speaker LoRA from random initialisation (stage 8)"
opt adapt_fft_config conf/adapt_fft.yaml "optimisation of per-speaker full fine-tuning (stage 8)"
opt n_adapt 0 "adaptation utterances per speaker: the first N of data/<spk>_adapt (0: all of it)"
opt adapt_systems "p4q lora_scratch_nf4 fft_fp32 fft_nf4" "per-speaker systems trained by stage 8 (add p4q_unsup for adaptation on the model's own 1-best)"
opt adapt_nj 2 "parallel adaptation jobs (speakers are spread over them; one process per job)"

section "Sweeps (optional stages 12-13, on the evaluation speakers)"
opt sweep_n_adapt "5 10 20 30 50" "adaptation utterances per speaker swept by stage 12"
opt sweep_utts_systems "p4q lora_scratch_nf4" "per-speaker LoRA systems swept over --sweep_n_adapt"
opt sweep_ranks "1 2 4 8" "LoRA ranks swept by stage 13 for P4Q (LoRA pretraining and adaptation at each rank)"

section Decoding
opt systems fp32 "systems decoded and scored by stages 9-10 (space separated; fp32 is the base model)"
opt inference_config conf/decode.yaml "espnet2 decoding config (beam_size, ctc_weight, ...)"
opt inference_args "" "extra options for the decoder, e.g. '--beam_size 4'"

# Stages: 'add_stage N NAME DESCRIPTION' runs function stage_NAME when N is in range.
declare -a _stage_nums=()
declare -A _stage_name=() _stage_desc=()
add_stage() {
  _stage_nums+=("$1")
  _stage_name[$1]=$2
  _stage_desc[$1]=$3
}
add_stage 1 data "local/data.sh \$local_data_opts -> data/{train,dev,<spk>_adapt,<spk>_test}, data/sa_{tune,eval}.list"
add_stage 2 validate "check every data dir under data/ (espnet_p4q.bin.validate_data_dir)"
add_stage 3 tokens "sentencepiece model and ESPnet token list -> data/token_list/<type>/"
add_stage 4 stats "espnet2 collect_stats: feature mean/variance and shape files -> exp/asr_stats_*/"
add_stage 5 train "train the base AED with espnet2, or import --pretrained_model -> exp/asr_<tag>/{config.yaml,base.pth}"
add_stage 6 quantize "NF4-quantise the base (packed 4-bit) -> exp/asr_<tag>/nf4/{model.pth,size.json}"
add_stage 7 lora_pretrain "LoRA on the frozen NF4 base, trained on --train_set -> exp/asr_<tag>/lora_pretrain/pretrain/adapter.pth"
add_stage 8 adapt "per-speaker adaptation of --adapt_systems on data/<spk>_adapt -> exp/asr_<tag>/adapt_<system>/<spk>/"
add_stage 9 decode "decode every test set with each of --systems -> exp/asr_<tag>/decode_<system>/<set>/text"
add_stage 10 score "WER per set and pooled over the sa_tune / sa_eval speakers -> .../score_wer/result.txt; RESULTS.md"
add_stage 11 compare "P4Q comparison of --systems on the evaluation speakers (WER, sizes, MAPSSWE) -> RESULTS.md"
add_stage 12 sweep_utts "optional: WER against adaptation utterances (--sweep_n_adapt) -> exp/asr_<tag>/sweep/sweep_utts.{csv,png}"
add_stage 13 sweep_rank "optional: P4Q WER against LoRA rank (--sweep_ranks) -> exp/asr_<tag>/sweep/sweep_rank.{csv,png}"

usage() {
  local s o n prev=""
  cat <<EOF
Usage: $0 [options]
The staged pipeline of an espnet-p4q recipe: run from the recipe directory (egs2/<corpus>/asr1).

Stages (those from --stage to --stop_stage run; work marked done by an earlier run is skipped):
EOF
  for s in $(printf '%s\n' "${_stage_nums[@]}" | sort -n); do
    printf '  %3s  %-9s %s\n' "$s" "${_stage_name[$s]}" "${_stage_desc[$s]}"
  done
  cat <<EOF

Options (--name value or --name=value), shown with their current values (defaults, changed by the
options given before --help, e.g. by run.sh):
EOF
  for o in "${_opt_order[@]}"; do
    if [ "${_opt_section[$o]}" != "$prev" ]; then
      prev=${_opt_section[$o]}
      printf '  %s:\n' "$prev"
    fi
    n=${!o}
    if [ -z "$n" ] || [[ $n =~ [[:space:]] ]]; then n="\"$n\""; fi
    printf '    %-32s %s\n' "--$o=$n" "${_opt_help[$o]}"
  done
  cat <<EOF

Outputs: data/, exp/ (every stage says where its log file is), RESULTS.md.
Job backend: cmd.sh of the recipe (utils/run_local.sh or utils/run_slurm.sh).
EOF
}

# Recipe environment first (venv, PYTHONPATH), as ESPnet recipes do.
if [ -f ./path.sh ]; then
  set +u
  # shellcheck disable=SC1091
  . ./path.sh
  set -u
fi

parse_options_names=("${_opt_order[@]}")
# shellcheck disable=SC1091
. "$utils/parse_options.sh"
if [ $# -gt 0 ]; then
  die "unexpected argument: $1 (see $0 --help)"
fi

# Option values are checked before any work: a bad value ends the run with one line and exit 1.
bad_option() {
  echo "$0: error: --$1 $2 (see $0 --help)" >&2
  exit 1
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for _o in stage stop_stage nj inference_nj ngpu num_workers train_threads seed nbpe n_adapt adapt_nj; do
  is_uint "${!_o}" || bad_option "$_o" "takes a non-negative integer, not '${!_o}'"
done
for _o in sweep_n_adapt sweep_ranks; do
  for _v in ${!_o}; do
    { is_uint "$_v" && [ "$_v" -ge 1 ]; } || bad_option "$_o" "takes positive integers, not '$_v'"
  done
done
for _o in nj inference_nj train_threads adapt_nj nbpe; do
  [ "${!_o}" -ge 1 ] || bad_option "$_o" "must be at least 1, not '${!_o}'"
done
_last_stage=$(printf '%s\n' "${_stage_nums[@]}" | sort -n | tail -n 1)
for _o in stage stop_stage; do
  { [ "${!_o}" -ge 1 ] && [ "${!_o}" -le "$_last_stage" ]; } ||
    bad_option "$_o" "must be a stage number 1-$_last_stage, not '${!_o}'"
done
[ "$stage" -le "$stop_stage" ] || bad_option stage "$stage is after --stop_stage $stop_stage: nothing would run"
case $cmd_backend in local|slurm) ;; *) bad_option cmd_backend "takes local or slurm, not '$cmd_backend'" ;; esac
for _o in sa_tune_list sa_eval_list; do
  [ -n "${!_o}" ] || bad_option "$_o" "needs a file name"
done
unset _o _v _last_stage
if [ "$check_only" = true ]; then
  exit 0
fi

# The project root (conf/quant, conf/lora live there); recipes are egs2/<corpus>/asr1.
p4q_root=$(cd "$p4q_dir/../../.." && pwd)
quant_conf=${quant_conf//\$p4q_root/$p4q_root}
systems_conf=${systems_conf//\$p4q_root/$p4q_root}
lora_conf=${lora_conf//\$p4q_root/$p4q_root}

# Job backend: cmd.sh sets train_cmd, cuda_cmd, decode_cmd from $cmd_backend.
train_cmd="$utils/run_local.sh"
cuda_cmd="$utils/run_local.sh"
decode_cmd="$utils/run_local.sh"
if [ -f ./cmd.sh ]; then
  # shellcheck disable=SC1091
  . ./cmd.sh
fi

# ------------------------------------------------------------------------------------------------
# Derived names.
case $token_type in
  bpe) token_suffix=bpe_${bpemode}${nbpe} ;;
  char) token_suffix=char ;;
  *) die "--token_type must be bpe or char, not $token_type" ;;
esac
token_dir=$token_listdir/$token_suffix
token_list=$token_dir/tokens.txt
if [ "$token_type" = bpe ]; then bpemodel=$token_dir/bpe.model; else bpemodel=none; fi

train_config_name=$(basename "${train_config:-none}" .yaml)
if [ -z "$asr_tag" ]; then
  if [[ $pretrained_model == whisper:* ]]; then
    asr_tag=${pretrained_model/:/_}
  elif [ -n "$pretrained_model" ]; then
    asr_tag=pretrained_$(basename "$(readlink -f "$pretrained_model")")
  else
    asr_tag=${train_config_name}_${token_suffix}
  fi
fi
asr_exp=$expdir/asr_$asr_tag
asr_stats_dir=${asr_stats_dir:-$expdir/asr_stats_${train_config_name}_${token_suffix}}

case $fs in
  *k) fs_hz=$(awk -v f="${fs%k}" 'BEGIN { printf "%d", f * 1000 }') ;;
  *) fs_hz=$fs ;;
esac

inference_ngpu=0
[ "$gpu_inference" = true ] && inference_ngpu=1

read_list() {  # speaker list file -> ids, one per line (blank lines and '#' comments ignored)
  [ -f "$1" ] || return 0
  sed -e 's/#.*//' "$1" | awk 'NF { print $1 }'
}

# The default test sets are resolved lazily: stage 1 may create the speaker lists.
resolve_test_sets() {
  if [ -n "$test_sets" ]; then
    echo "$test_sets"
    return
  fi
  local s out=$valid_set
  for s in $(read_list "$sa_tune_list") $(read_list "$sa_eval_list"); do
    out="$out ${s}_test"
  done
  echo "$out"
}

# ------------------------------------------------------------------------------------------------
# Markers. A marker's first line is the signature of the inputs the work was made from.
signature() {  # words... -> short hash
  printf '%s\n' "$@" | sha256sum | cut -c1-16
}
file_hash() {  # files... -> hash of their contents (missing files count as "missing")
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then sha256sum < "$f" | cut -c1-16; else echo "missing:$f"; fi
  done | sha256sum | cut -c1-16
}
dir_hash() {  # dirs... -> hash of every file below them
  local d
  for d in "$@"; do
    if [ -d "$d" ]; then
      (cd "$d" && find . -type f ! -name '.done' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    elif [ -f "$d" ]; then
      sha256sum < "$d"
    else
      echo "missing:$d"
    fi
  done | sha256sum | cut -c1-16
}

# is_done MARKER SIGNATURE [warn]: true when the work behind MARKER is finished and may be kept.
# A marker with another signature means the inputs changed: the work is redone, or (with 'warn',
# for expensive work) kept with a warning.
is_done() {
  local marker=$1 sig=$2 mode=${3:-redo}
  [ "$skip_done" = true ] || return 1
  [ -f "$marker" ] || return 1
  local old
  old=$(head -n 1 "$marker")
  if [ "$old" != "$sig" ]; then
    if [ "$mode" = warn ]; then
      log "WARNING: $marker was made from other inputs or options ($old, now $sig); keeping it." \
        "Remove $(dirname "$marker") to redo it."
      return 0
    fi
    log "inputs changed since $marker was written ($old, now $sig): redoing"
    return 1
  fi
  return 0
}
mark_done() {  # MARKER SIGNATURE
  mkdir -p "$(dirname "$1")"
  printf '%s\n%s\n' "$2" "$(date '+%Y-%m-%dT%H:%M:%S')" > "$1.tmp.$$"
  mv -f "$1.tmp.$$" "$1"
}

# run_logged [--append] LOG COMMAND...: run here, output to LOG; on failure show its tail.
run_logged() {
  local append=false
  if [ "$1" = --append ]; then append=true; shift; fi
  local logf=$1
  shift
  mkdir -p "$(dirname "$logf")"
  [ "$append" = true ] || : > "$logf"
  {
    echo "# $*"
    echo "# Started at $(date)"
  } >> "$logf"
  if "$@" >> "$logf" 2>&1; then
    echo "# Ended (code 0) at $(date)" >> "$logf"
  else
    local rc=$?
    echo "# Ended (code $rc) at $(date)" >> "$logf"
    log "failed (exit $rc); log is in $logf:"
    tail -n 20 "$logf" >&2
    return "$rc"
  fi
}

# replace_dir TMP DEST: put a finished directory in place of DEST.
replace_dir() {
  rm -rf "$2"
  mv "$1" "$2"
}

need_file() {
  local f
  for f in "$@"; do
    [ -e "$f" ] || die "missing $f (did an earlier stage run?)"
  done
}

# ------------------------------------------------------------------------------------------------
# Systems: the rows of the comparison come from the registry ($systems_conf), read once through
# python -m espnet_p4q.bin.systems; stages 9-10 decode every system with python -m
# espnet_p4q.bin.decode. 'register_system NAME CONFIG MODEL [PER_SPEAKER]' adds one that is not
# in the registry (the sweeps' points). PER_SPEAKER is empty, adapter:FILE (one adapter for all),
# adapters:DIR (DIR/<spk>/adapter.pth) or models:DIR (DIR/<spk>/, a fully fine-tuned model).
nf4_dir=$asr_exp/nf4
pretrained_adapter=$asr_exp/lora_pretrain/pretrain/adapter.pth
declare -A sys_config=() sys_model=() sys_adapter=() sys_base=() sys_label=() sys_mode=() sys_init=() \
  sys_train_conf=() sys_labels=()
register_system() {
  sys_config[$1]=$2
  sys_model[$1]=$3
  sys_adapter[$1]=${4:-}
}
load_systems() {
  local table name base config model per mode init tconf labels label
  table=$("$python" -m espnet_p4q.bin.systems --registry "$systems_conf" table --asr_exp "$asr_exp" \
    --nf4_dir "$nf4_dir" --pretrained_adapter "$pretrained_adapter") || die "cannot read $systems_conf"
  while IFS=$'\t' read -r name base config model per mode init tconf labels label; do
    [ "$per" != - ] || per=""
    register_system "$name" "$config" "$model" "$per"
    sys_base[$name]=$base sys_label[$name]=$label sys_mode[$name]=$mode sys_init[$name]=$init
    sys_train_conf[$name]=$tconf sys_labels[$name]=$labels
  done <<< "$table"
}
load_systems
per_speaker_path() { echo "${sys_adapter[$1]#*:}"; }

# ------------------------------------------------------------------------------------------------
stage_data() {
  local logf=$expdir/data_prep/data.log marker=data/.data.done sig
  [ -x local/data.sh ] || [ -f local/data.sh ] || die "no local/data.sh in $PWD"
  # Inputs: the options, local/data.sh and every file named in the options (e.g. its config).
  local w files=(local/data.sh)
  for w in $local_data_opts; do [ -f "$w" ] && files+=("$w"); done
  sig=$(signature "$local_data_opts" "$(file_hash "${files[@]}")")
  if is_done "$marker" "$sig"; then
    log "Stage 1: data preparation already done ($marker); skipping"
    return
  fi
  log "Stage 1: data preparation: local/data.sh $local_data_opts; log: $logf"
  local runner=()
  [ -x local/data.sh ] || runner=(bash)
  # shellcheck disable=SC2086
  run_logged "$logf" "${runner[@]}" local/data.sh $local_data_opts
  need_file "data/$train_set/wav.scp" "data/$valid_set/wav.scp"
  mark_done "$marker" "$sig"
}

data_dirs_all() {  # every data dir under data/ (a dir holding wav.scp)
  local d
  for d in data/*/; do
    d=${d%/}
    [ -f "$d/wav.scp" ] && echo "$d"
  done
  return 0
}

stage_validate() {
  local logf=$expdir/data_prep/validate.log marker=data/.validate.done sig dirs s
  dirs=$(data_dirs_all)
  [ -n "$dirs" ] || die "no data dirs under data/ (run stage 1)"
  for s in $(resolve_test_sets) "$train_set" "$valid_set"; do
    [ -f "data/$s/wav.scp" ] || die "data/$s is not a data dir (needed by later stages)"
  done
  for s in $(read_list "$sa_tune_list") $(read_list "$sa_eval_list"); do
    [[ $s != *-* ]] || die "speaker id '$s' contains '-' (sclite cuts the speaker at the first '-')"
    [ -f "data/${s}_adapt/wav.scp" ] || log "WARNING: speaker $s has no data/${s}_adapt"
  done
  # shellcheck disable=SC2086
  sig=$(signature "$fs_hz" "$validate_pipe_fraction" $dirs "$(for s in $dirs; do file_hash "$s/wav.scp" "$s/text" "$s/utt2spk" "$s/spk2utt"; done)")
  if is_done "$marker" "$sig"; then
    log "Stage 2: data dirs already validated ($marker); skipping"
    return
  fi
  log "Stage 2: validating $(echo "$dirs" | wc -l) data dirs; log: $logf"
  local lists=()
  for s in "$sa_tune_list" "$sa_eval_list"; do [ ! -f "$s" ] || lists+=("$s"); done
  # shellcheck disable=SC2086
  run_logged "$logf" "$python" -m espnet_p4q.bin.validate_data_dir --sample_rate "$fs_hz" \
    --pipe_fraction "$validate_pipe_fraction" ${lists[@]:+--id_lists "${lists[@]}"} -- $dirs
  mark_done "$marker" "$sig"
}

stage_tokens() {
  if [ -n "$pretrained_model" ]; then
    log "Stage 3: skipped: the pretrained model brings its own token list"
    return
  fi
  local logf=$expdir/data_prep/tokens_${token_suffix}.log marker=$token_dir/.done sig tmp text
  text=${bpe_train_text:-data/$train_set/text}
  need_file "$text"
  sig=$(signature "$token_type" "$nbpe" "$bpemode" "$(file_hash "$text" "data/$train_set/text")")
  if is_done "$marker" "$sig"; then
    log "Stage 3: token list already made ($token_list); skipping"
    return
  fi
  log "Stage 3: token list ($token_suffix) from $text -> $token_dir; log: $logf"
  tmp=$token_dir.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if [ -n "$bpe_train_text" ]; then
    cp "$bpe_train_text" "$tmp/train_text.txt"
  else
    cut -d' ' -f2- "data/$train_set/text" > "$tmp/train_text.txt"
  fi
  mkdir -p "$(dirname "$logf")"
  : > "$logf"
  local tok_opts=(--token_type char)
  if [ "$token_type" = bpe ]; then
    run_logged --append "$logf" "$python" "$pyscripts/spm_train.py" --input "$tmp/train_text.txt" \
      --vocab_size "$nbpe" --model_type "$bpemode" --model_prefix "$tmp/bpe"
    tok_opts=(--token_type bpe --bpemodel "$tmp/bpe.model")
  fi
  # ESPnet's token list: <blank> first, <unk> second, units by frequency, <sos/eos> last.
  run_logged --append "$logf" "$python" -m espnet2.bin.tokenize_text "${tok_opts[@]}" \
    --input "data/$train_set/text" --output "$tmp/tokens.txt" \
    --field 2- --cleaner none --write_vocabulary true \
    --add_symbol '<blank>:0' --add_symbol '<unk>:1' --add_symbol '<sos/eos>:-1'
  log "Stage 3: $(wc -l < "$tmp/tokens.txt") tokens"
  mark_done "$tmp/.done" "$sig"
  replace_dir "$tmp" "$token_dir"
}

# Common espnet2 options of collect_stats and training.
asr_data_opts() {
  local bpe_opts=()
  [ "$token_type" = bpe ] && bpe_opts=(--bpemodel "$bpemodel")
  printf '%s\n' --use_preprocessor true --token_type "$token_type" --token_list "$token_list" \
    "${bpe_opts[@]}" --non_linguistic_symbols none --cleaner none --g2p none \
    --frontend_conf "fs=$fs"
}

stage_stats() {
  if [ -n "$pretrained_model" ]; then
    log "Stage 4: skipped: the pretrained model brings its own feature statistics"
    return
  fi
  [ -n "$train_config" ] || die "--train_config is required for stage 4"
  need_file "$train_config" "$token_list" "data/$train_set/wav.scp" "data/$valid_set/wav.scp"
  local marker=$asr_stats_dir/.done sig logdir _nj n_train n_valid j inputs=() sub
  sig=$(signature "$(file_hash "$train_config" "$token_list" "$token_dir/.done")" \
    "$(file_hash "data/$train_set/wav.scp" "data/$train_set/text" "data/$valid_set/wav.scp" "data/$valid_set/text")" "$fs")
  if is_done "$marker" "$sig"; then
    log "Stage 4: statistics already collected ($asr_stats_dir); skipping"
    return
  fi
  logdir=$asr_stats_dir/logdir
  n_train=$(wc -l < "data/$train_set/wav.scp")
  n_valid=$(wc -l < "data/$valid_set/wav.scp")
  _nj=$nj
  [ "$_nj" -le "$n_train" ] || _nj=$n_train
  [ "$_nj" -le "$n_valid" ] || _nj=$n_valid
  log "Stage 4: collect_stats with $_nj job(s) -> $asr_stats_dir; log: $logdir/stats.*.log"
  rm -rf "$asr_stats_dir"
  mkdir -p "$logdir" "$asr_stats_dir/.tmp"
  awk -v n="$_nj" -v d="$logdir" '{ print > (d "/train." ((NR - 1) % n + 1) ".scp") }' "data/$train_set/wav.scp"
  awk -v n="$_nj" -v d="$logdir" '{ print > (d "/valid." ((NR - 1) % n + 1) ".scp") }' "data/$valid_set/wav.scp"
  local data_opts
  mapfile -t data_opts < <(asr_data_opts)
  # shellcheck disable=SC2086
  $train_cmd JOB=1:"$_nj" "$logdir/stats.JOB.log" \
    "$python" -m espnet2.bin.asr_train --collect_stats true --ngpu 0 --num_workers 0 \
    "${data_opts[@]}" \
    --train_data_path_and_name_and_type "data/$train_set/wav.scp,speech,sound" \
    --train_data_path_and_name_and_type "data/$train_set/text,text,text" \
    --valid_data_path_and_name_and_type "data/$valid_set/wav.scp,speech,sound" \
    --valid_data_path_and_name_and_type "data/$valid_set/text,text,text" \
    --train_shape_file "$logdir/train.JOB.scp" --valid_shape_file "$logdir/valid.JOB.scp" \
    --output_dir "$logdir/stats.JOB" --config "$train_config" $asr_args
  for j in $(seq "$_nj"); do inputs+=(--input_dir "$logdir/stats.$j"); done
  run_logged "$logdir/aggregate.log" "$python" -m espnet2.bin.aggregate_stats_dirs "${inputs[@]}" \
    --output_dir "$asr_stats_dir/.tmp"
  for sub in train valid; do
    awk -v n="$(wc -l < "$token_list")" '{ print $0 "," n }' "$asr_stats_dir/.tmp/$sub/text_shape" \
      > "$asr_stats_dir/.tmp/$sub/text_shape.$token_type"
  done
  mv "$asr_stats_dir/.tmp/train" "$asr_stats_dir/train"
  mv "$asr_stats_dir/.tmp/valid" "$asr_stats_dir/valid"
  rmdir "$asr_stats_dir/.tmp"
  mark_done "$marker" "$sig"
}

# Pick the trained model file that becomes base.pth (a relative symlink, replaced atomically).
link_base_model() {
  local cand target=""
  for cand in "$inference_asr_model" valid.acc.ave.pth valid.acc.best.pth valid.loss.ave.pth \
      valid.loss.best.pth latest.pth; do
    if [ -e "$asr_exp/$cand" ]; then
      target=$cand
      break
    fi
  done
  [ -n "$target" ] || die "training wrote no model file in $asr_exp"
  [ "$target" = "$inference_asr_model" ] ||
    log "WARNING: $asr_exp/$inference_asr_model does not exist; base.pth -> $target"
  target=$(basename "$(readlink -f "$asr_exp/$target")")
  ln -sfn "$target" "$asr_exp/base.pth.tmp"
  mv -fT "$asr_exp/base.pth.tmp" "$asr_exp/base.pth"
  log "Stage 5: base model: $asr_exp/base.pth -> $target"
}

# import_whisper: stage 5 for --pretrained_model whisper:NAME (config.yaml + base.pth from the cache).
import_whisper() {
  local name=${pretrained_model#whisper:} cache=${whisper_cache:-$expdir/whisper} marker=$asr_exp/.done sig
  mkdir -p "$cache"
  cache=$(cd "$cache" && pwd)
  sig=$(signature whisper "$name" "$cache")
  if is_done "$marker" "$sig" && [ -f "$asr_exp/base.pth" ]; then
    log "Stage 5: Whisper $name already imported ($asr_exp); skipping"
    return
  fi
  log "Stage 5: Whisper $name (cache $cache) as an espnet2 model -> $asr_exp; log: $asr_exp/import.log"
  rm -rf "$asr_exp" "$asr_exp.tmp"
  run_logged "$expdir/import_whisper.log" "$python" -m espnet_p4q.bin.build_whisper --cache_dir "$cache" \
    --name "$name" --espnet_dir "$asr_exp.tmp"
  mv "$expdir/import_whisper.log" "$asr_exp.tmp/import.log"
  mark_done "$asr_exp.tmp/.done" "$sig"
  replace_dir "$asr_exp.tmp" "$asr_exp"
}

stage_train() {
  local marker=$asr_exp/.done sig logf
  if [[ $pretrained_model == whisper:* ]]; then
    import_whisper
    return
  fi
  if [ -n "$pretrained_model" ]; then
    [ -d "$pretrained_model" ] || die "--pretrained_model $pretrained_model is not a directory"
    sig=$(signature pretrained "$(readlink -f "$pretrained_model")" "$pretrained_model_file" \
      "$(dir_hash "$pretrained_model")")
    if is_done "$marker" "$sig"; then
      log "Stage 5: pretrained model already imported ($asr_exp); skipping"
      return
    fi
    if [ "$(readlink -f "$asr_exp")" = "$(readlink -f "$pretrained_model")" ] ||
       [ -e "$asr_exp/train.log" ] || [ -e "$asr_exp/checkpoint.pth" ]; then
      die "$asr_exp holds a trained model; choose another --asr_tag for the import"
    fi
    logf=$asr_exp/import.log
    log "Stage 5: importing the pretrained model $pretrained_model -> $asr_exp; log: $logf"
    rm -rf "$asr_exp"
    mkdir -p "$asr_exp"
    local opts=(--src "$pretrained_model" --output_dir "$asr_exp/.tmp" --final_dir "$asr_exp")
    [ -n "$pretrained_model_file" ] && opts+=(--model_file "$pretrained_model_file")
    run_logged "$logf" "$python" "$pyscripts/import_pretrained.py" "${opts[@]}"
    local f
    for f in "$asr_exp"/.tmp/*; do mv "$f" "$asr_exp/"; done
    rmdir "$asr_exp/.tmp"
    mark_done "$marker" "$sig"
    return
  fi

  [ -n "$train_config" ] || die "--train_config is required for stage 5"
  need_file "$train_config" "$token_list" "$asr_stats_dir/.done"
  sig=$(signature "$(file_hash "$train_config" "$token_list" "$asr_stats_dir/.done")" \
    "$asr_args" "$seed" "$feats_normalize" "$inference_asr_model")
  if is_done "$marker" "$sig" warn; then
    log "Stage 5: base model already trained ($asr_exp/base.pth); skipping"
    return
  fi
  logf=$asr_exp/train.log
  mkdir -p "$asr_exp"
  if [ -f "$logf" ]; then
    # Keep the log of an interrupted run next to the new one.
    mv "$logf" "$asr_exp/train.$(date -r "$logf" '+%Y%m%d%H%M%S').log"
  fi
  local norm_opts=(--normalize "$feats_normalize")
  [ "$feats_normalize" = global_mvn ] &&
    norm_opts+=(--normalize_conf "stats_file=$asr_stats_dir/train/feats_stats.npz")
  local dist_opts=()
  [ "$ngpu" -gt 1 ] && dist_opts=(--multiprocessing_distributed true)
  local data_opts cmd=$train_cmd
  [ "$ngpu" -gt 0 ] && cmd=$cuda_cmd
  mapfile -t data_opts < <(asr_data_opts)
  if [ -f "$asr_exp/checkpoint.pth" ]; then
    # An interrupted training is resumed only when it was started from the same inputs, and only
    # from a checkpoint that loads (a kill during torch.save leaves a truncated file).
    if [ -f "$asr_exp/.started" ] && [ "$(head -n 1 "$asr_exp/.started")" != "$sig" ]; then
      die "$asr_exp holds an interrupted training started from other inputs or options;" \
        "remove $asr_exp (or choose another --asr_tag) to train afresh"
    fi
    if "$python" "$pyscripts/check_checkpoint.py" "$asr_exp/checkpoint.pth"; then
      log "Stage 5: resuming the interrupted training from $asr_exp/checkpoint.pth"
    else
      log "WARNING: $asr_exp/checkpoint.pth is unreadable; moved to checkpoint.pth.bad, training restarts"
      mv -f "$asr_exp/checkpoint.pth" "$asr_exp/checkpoint.pth.bad"
    fi
  fi
  mark_done "$asr_exp/.started" "$sig"
  log "Stage 5: training the base model with $train_config ($ngpu GPU) -> $asr_exp; log: $logf"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$train_threads $cmd --gpu "$ngpu" "$logf" \
    "$python" -m espnet2.bin.asr_train \
    "${data_opts[@]}" "${norm_opts[@]}" "${dist_opts[@]}" \
    --train_data_path_and_name_and_type "data/$train_set/wav.scp,speech,sound" \
    --train_data_path_and_name_and_type "data/$train_set/text,text,text" \
    --valid_data_path_and_name_and_type "data/$valid_set/wav.scp,speech,sound" \
    --valid_data_path_and_name_and_type "data/$valid_set/text,text,text" \
    --train_shape_file "$asr_stats_dir/train/speech_shape" \
    --train_shape_file "$asr_stats_dir/train/text_shape.$token_type" \
    --valid_shape_file "$asr_stats_dir/valid/speech_shape" \
    --valid_shape_file "$asr_stats_dir/valid/text_shape.$token_type" \
    --fold_length 80000 --fold_length 150 \
    --resume true --ngpu "$ngpu" --num_workers "$num_workers" --seed "$seed" \
    --output_dir "$asr_exp" --config "$train_config" $asr_args
  link_base_model
  mark_done "$marker" "$sig"
}

# ------------------------------------------------------------------------------------------------
# Stages 6-8: NF4 quantisation, LoRA pretraining, per-speaker adaptation (espnet_p4q).
stage_quantize() {
  local dir=$nf4_dir sig
  need_file "$asr_exp/base.pth" "$asr_exp/config.yaml" "$quant_conf"
  sig=$(signature "$(file_hash "$asr_exp/base.pth" "$asr_exp/config.yaml" "$quant_conf")")
  if is_done "$dir/.done" "$sig"; then
    log "Stage 6: NF4 model already made ($dir); skipping"
    return
  fi
  log "Stage 6: NF4-quantising $asr_exp/base.pth with $quant_conf -> $dir; log: $asr_exp/quantize.log"
  rm -rf "$dir.tmp"
  run_logged "$asr_exp/quantize.log" "$python" -m espnet_p4q.bin.quantize \
    --asr_train_config "$asr_exp/config.yaml" --asr_model_file "$asr_exp/base.pth" \
    --quant_conf "$quant_conf" --output_dir "$dir.tmp"
  mark_done "$dir.tmp/.done" "$sig"
  replace_dir "$dir.tmp" "$dir"
  log "Stage 6: $(grep -m1 'FP32' "$asr_exp/quantize.log" | sed 's/.*INFO //')"
}

# pretrain_lora OUT LOG [FINETUNE OPTIONS...]: LoRA on the frozen NF4 base over --train_set -> OUT
pretrain_lora() {
  local out=$1 logf=$2 sig
  shift 2
  need_file "$nf4_dir/.done" "$lora_conf" "$lora_pretrain_config" "data/$train_set/text"
  sig=$(signature "$(file_hash "$nf4_dir/model.pth" "$lora_conf" "$lora_pretrain_config" \
    "data/$train_set/text" "data/$train_set/wav.scp")" "$*")
  if is_done "$out/.done" "$sig"; then
    log "LoRA pretraining: already made ($out); skipping"
    return
  fi
  log "LoRA pretraining on data/$train_set over the frozen NF4 base${*:+ ($*)} -> $out; log: $logf"
  rm -rf "$out.tmp"
  OMP_NUM_THREADS=$train_threads $cuda_cmd --gpu "$ngpu" "$logf" "$python" -m espnet_p4q.bin.finetune --base "nf4:$nf4_dir" \
    --mode lora --lora_conf "$lora_conf" --train_conf "$lora_pretrain_config" --ngpu "$ngpu" \
    --data_dirs "data/$train_set" --names pretrain --output_dir "$out.tmp" "$@"
  mark_done "$out.tmp/.done" "$sig"
  replace_dir "$out.tmp" "$out"
}

stage_lora_pretrain() {
  pretrain_lora "$asr_exp/lora_pretrain" "$asr_exp/lora_pretrain.log"
}

base_spec() {  # SYSTEM -> its base as espnet_p4q names it (nf4:DIR or fp32:CONFIG,MODEL)
  if [ "${sys_base[$1]}" = nf4 ]; then echo "nf4:$nf4_dir"; else echo "fp32:$asr_exp/config.yaml,$asr_exp/base.pth"; fi
}

adapt_args() {  # SYSTEM -> finetune options of that system (its registry entry), one word a line
  local sys=$1 conf
  [ "${sys_mode[$sys]:--}" != - ] ||
    die "'$sys' is not a per-speaker system of $systems_conf (those with 'adapt':$(for s in "${!sys_mode[@]}"; do [ "${sys_mode[$s]}" = - ] || printf ' %s' "$s"; done))"
  conf=${sys_train_conf[$sys]}
  [ -n "${_opt_help[$conf]:-}" ] || die "$systems_conf: system $sys: train_conf '$conf' is not an option of p4q.sh"
  printf '%s\n' --base "$(base_spec "$sys")" --mode "${sys_mode[$sys]}"
  if [ "${sys_mode[$sys]}" = lora ]; then
    printf '%s\n' --lora_conf "$lora_conf"
    [ "${sys_init[$sys]}" != pretrained ] || printf '%s\n' --init_adapter "$pretrained_adapter"
  fi
  printf '%s\n' --train_conf "${!conf}"
  [ "${sys_labels[$sys]}" = reference ] || printf '%s\n' --text_dir "$asr_exp/decode_${sys_labels[$sys]}"
}

# adapt_speakers SYSTEM OUT N "SPEAKERS" [FINETUNE OPTIONS...]: adapt every speaker with the
# options of SYSTEM (adapt_args, then the extra ones) on the first N utterances of data/<spk>_adapt
# (0: all) -> OUT/<spk>/, in up to --adapt_nj jobs; finished speakers are kept on a re-run.
adapt_speakers() {
  local sys=$1 out=$2 nutt=$3 spks=$4
  shift 4
  local words=() s j n sig files=() conf_files=() n_opts=() what="all their adapt utterances"
  for s in $spks; do files+=("data/${s}_adapt/text" "data/${s}_adapt/wav.scp"); done
  mapfile -t words < <(adapt_args "$sys")
  words+=("$@")
  for j in "${words[@]}"; do [ -f "$j" ] && conf_files+=("$j"); done
  sig=$(signature "${words[*]}" "$nutt" "$spks" "$(file_hash "${files[@]}" "${conf_files[@]}")" \
    "$( [ -f "$nf4_dir/model.pth" ] && file_hash "$nf4_dir/model.pth")")
  if is_done "$out/.done" "$sig"; then
    log "$sys: every speaker already adapted ($out); skipping"
    return
  fi
  if [ -f "$out/.started" ] && [ "$(head -n 1 "$out/.started")" != "$sig" ]; then
    rm -rf "$out"  # made from other inputs: start again
  fi
  mkdir -p "$out/logdir"
  mark_done "$out/.started" "$sig"
  n=$adapt_nj
  [ "$n" -le "$(echo "$spks" | wc -w)" ] || n=$(echo "$spks" | wc -w)
  j=0
  rm -f "$out"/logdir/speakers.*
  for s in $spks; do  # round robin: speakers to jobs
    echo "$s data/${s}_adapt" >> "$out/logdir/speakers.$(( j % n + 1 ))"
    j=$((j + 1))
  done
  if [ "$nutt" -gt 0 ]; then what="their first $nutt adapt utterances"; n_opts=(--n_utts "$nutt"); fi
  log "$sys: adapting $(echo "$spks" | wc -w) speakers on $what in $n job(s) -> $out; log: $out/logdir/adapt.*.log"
  $cuda_cmd --gpu "$ngpu" JOB=1:"$n" "$out/logdir/adapt.JOB.log" "$python" -m espnet_p4q.bin.finetune \
    "${words[@]}" --ngpu "$ngpu" "${n_opts[@]}" --data_list "$out/logdir/speakers.JOB" --output_dir "$out"
  for s in $spks; do need_file "$out/$s/train.json"; done
  mark_done "$out/.done" "$sig"
  log "$sys: mean wall time per speaker $("$python" -c 'import json,sys; v=[json.load(open(f))["wall_seconds"] for f in sys.argv[1:]]; print(f"{sum(v)/len(v):.1f} s")' "$out"/*/train.json)"
}

stage_adapt() {
  local spks sys s
  spks=$(read_list "$sa_tune_list"; read_list "$sa_eval_list")
  [ -n "$spks" ] || die "no speakers in $sa_tune_list / $sa_eval_list"
  for sys in $adapt_systems; do
    if [ "${sys_labels[$sys]:-reference}" != reference ]; then  # labels: another system's 1-best
      # shellcheck disable=SC2046
      decode_system "${sys_labels[$sys]}" $(for s in $spks; do echo "${s}_adapt"; done)
    fi
    adapt_speakers "$sys" "$asr_exp/adapt_$sys" "$n_adapt" "$spks"
  done
}

# decode_job_cmd SYSTEM LOGDIR NGPU: print (one word a line) the command of decoding job JOB.
# Job JOB reads LOGDIR/wav.JOB.scp (its utterances, from several sets), LOGDIR/utt2spk.JOB (the
# speaker of each, to swap in its adapter or model) and writes LOGDIR/output.JOB/1best_recog/text
# and LOGDIR/output.JOB/decode.json (espnet2.bin.asr_inference's layout, plus the timing).
decode_job_cmd() {
  local name=$1 logdir=$2 ngpu_=$3 adapter_opts=() per=${sys_adapter[$1]}
  case $per in
    adapter:*) adapter_opts=(--adapter "${per#*:}") ;;
    adapters:*) adapter_opts=(--adapter_dir "${per#*:}" --utt2spk "$logdir/utt2spk.JOB") ;;
    models:*) adapter_opts=(--model_dir "${per#*:}" --utt2spk "$logdir/utt2spk.JOB") ;;
    "") ;;
    *) die "system $name: bad per-speaker part '$per'" ;;
  esac
  printf '%s\n' "$python" -m espnet_p4q.bin.decode --ngpu "$ngpu_" \
    --data_path_and_name_and_type "$logdir/wav.JOB.scp,speech,sound" \
    --asr_train_config "${sys_config[$name]}" --asr_model_file "${sys_model[$name]}" \
    "${adapter_opts[@]}" --config "$inference_config" --output_dir "$logdir/output.JOB"
}

# decode_system NAME SETS...: decode the sets not yet decoded by system NAME.
decode_system() {
  local name=$1
  shift
  [ -n "${sys_config[$name]:-}" ] || die "unknown system '$name' (registered: ${!sys_config[*]})"
  need_file "${sys_config[$name]}" "${sys_model[$name]}" "$inference_config"
  [ -z "${sys_adapter[$name]}" ] || need_file "$(per_speaker_path "$name")"
  local dir=$asr_exp/decode_$name sig s todo=() dirs=() n cmd_words
  sig=$(signature p4q "$(file_hash "${sys_config[$name]}" "${sys_model[$name]}" "$inference_config")" \
    "$( [ -z "${sys_adapter[$name]}" ] || dir_hash "$(per_speaker_path "$name")")" "$inference_args")
  for s in "$@"; do
    need_file "data/$s/wav.scp"
    if is_done "$dir/$s/.done" "$(signature "$sig" "$(file_hash "data/$s/wav.scp")")"; then
      continue
    fi
    todo+=("$s")
    dirs+=("data/$s")
  done
  if [ ${#todo[@]} -eq 0 ]; then
    log "Stage 9: system $name: all $# set(s) already decoded ($dir); skipping"
    return
  fi
  local logdir=$dir/logdir
  rm -rf "$logdir"
  n=$("$python" "$pyscripts/decode_jobs.py" split --nj "$inference_nj" --logdir "$logdir" "${dirs[@]}")
  log "Stage 9: system $name: decoding ${#todo[@]} set(s) (${todo[*]}) in $n job(s) -> $dir; log: $logdir/decode.*.log"
  mapfile -t cmd_words < <(decode_job_cmd "$name" "$logdir" "$inference_ngpu")
  # shellcheck disable=SC2086
  $decode_cmd --gpu "$inference_ngpu" JOB=1:"$n" "$logdir/decode.JOB.log" \
    "${cmd_words[@]}" $inference_args
  "$python" "$pyscripts/decode_jobs.py" merge --nj "$n" --logdir "$logdir" --output_dir "$dir" "${dirs[@]}"
  for s in "${todo[@]}"; do
    mark_done "$dir/$s/.done" "$(signature "$sig" "$(file_hash "data/$s/wav.scp")")"
  done
}

# sets_of_system NAME: the test sets system NAME decodes. A system with per-speaker parts
# (adapters:DIR, models:DIR) only serves the held-out speakers, so it decodes their <spk>_test sets.
sets_of_system() {
  local s spk sa_sets
  case ${sys_adapter[$1]:-} in
    adapters:*|models:*)
      sa_sets=" $(for spk in $(read_list "$sa_tune_list"; read_list "$sa_eval_list"); do echo "${spk}_test"; done | tr '\n' ' ') "
      for s in $(resolve_test_sets); do
        if [[ "$sa_sets" == *" $s "* ]]; then echo "$s"; fi
      done ;;
    *) resolve_test_sets ;;
  esac
}

stage_decode() {
  local sys
  for sys in $systems; do
    [ -n "${sys_config[$sys]:-}" ] || die "unknown system '$sys' (registered: ${!sys_config[*]})"
    # shellcheck disable=SC2046
    decode_system "$sys" $(sets_of_system "$sys")
  done
}

# Scoring: every set of a system that needs it is scored by one Python process (pyscripts/
# score_sets.py runs espnet_p4q.bin.score's main per set) into SET/score_wer.tmp, renamed when done.
_score_jobs=()
queue_score() {  # SYSTEM_DIR SET REF HYP
  local dir=$1 s=$2 ref=$3 hyp=$4 sig
  sig=$(signature "$(file_hash "$ref" "$hyp")")
  is_done "$dir/$s/score_wer/.done" "$sig" && return 0
  _score_jobs+=("$s"$'\t'"$sig"$'\t'"$ref"$'\t'"$hyp")
}

run_scores() {  # SYSTEM_DIR: score the queued sets
  local dir=$1 job s sig ref hyp jobs_file
  [ ${#_score_jobs[@]} -gt 0 ] || return 0
  jobs_file=$dir/score_logs/jobs.tsv
  mkdir -p "$dir/score_logs"
  for job in "${_score_jobs[@]}"; do
    IFS=$'\t' read -r s sig ref hyp <<< "$job"
    rm -rf "$dir/$s/score_wer.tmp"
    printf '%s\t%s\t%s\t%s\n' "$ref" "$hyp" "$dir/$s/score_wer.tmp" "$dir/$s/score_wer/hyp.trn"
  done > "$jobs_file"
  run_logged "$dir/score_logs/score.log" "$python" "$pyscripts/score_sets.py" "$jobs_file"
  for job in "${_score_jobs[@]}"; do
    IFS=$'\t' read -r s sig ref hyp <<< "$job"
    need_file "$dir/$s/score_wer.tmp/result.txt"
    mark_done "$dir/$s/score_wer.tmp/.done" "$sig"
    replace_dir "$dir/$s/score_wer.tmp" "$dir/$s/score_wer"
    log "Stage 10: $dir/$s/score_wer/result.txt: $(grep -m1 'Sum/Avg' "$dir/$s/score_wer/result.txt" | tr -s ' ')"
  done
  _score_jobs=()
}

stage_score() {
  "$python" -c "import espnet_p4q.bin.score" 2>/dev/null ||
    die "python -m espnet_p4q.bin.score is not importable (the scorer of the espnet_p4q package)"
  local sets sys s dir group spks list sets_of_group
  for sys in $systems; do
    dir=$asr_exp/decode_$sys
    sets=$(sets_of_system "$sys" | tr '\n' ' ')
    for s in $sets; do
      need_file "$dir/$s/text" "data/$s/text"
      queue_score "$dir" "$s" "data/$s/text" "$dir/$s/text"
    done
    # Pooled over the speakers of each list: result.txt has one row per speaker and the Sum/Avg.
    for group in sa_tune sa_eval; do
      list=${group}_list
      spks=$(read_list "${!list}")
      sets_of_group=()
      for s in $spks; do
        if [[ " $sets " == *" ${s}_test "* ]]; then sets_of_group+=("${s}_test"); fi
      done
      [ ${#sets_of_group[@]} -gt 0 ] || continue
      mkdir -p "$dir/overall_$group"
      for s in "${sets_of_group[@]}"; do cat "data/$s/text"; done > "$dir/overall_$group/ref_text.tmp"
      for s in "${sets_of_group[@]}"; do cat "$dir/$s/text"; done > "$dir/overall_$group/text.tmp"
      mv -f "$dir/overall_$group/ref_text.tmp" "$dir/overall_$group/ref_text"
      mv -f "$dir/overall_$group/text.tmp" "$dir/overall_$group/text"
      queue_score "$dir" "overall_$group" "$dir/overall_$group/ref_text" "$dir/overall_$group/text"
    done
    if [ ${#_score_jobs[@]} -eq 0 ]; then
      log "Stage 10: system $sys: every set already scored ($dir/*/score_wer); skipping"
    else
      log "Stage 10: system $sys: scoring ${#_score_jobs[@]} set(s); log: $dir/score_logs/score.log"
      run_scores "$dir"
    fi
  done
  local words=()
  # keep stage 11's comparison on top (recomputed) once it has been made
  [ ! -f "$asr_exp/compare/.done" ] || mapfile -t words < <(comparison_args)
  write_results "$expdir/results.log" "${words[@]}"
  log "Stage 10: RESULTS.md up to date"
}

# write_results LOG [COMPARISON OPTIONS...]: RESULTS.md (python -m espnet_p4q.bin.make_results,
# the one results writer): the per-set tables of every scored set under $expdir, with the P4Q
# comparison on top when its options are given.
write_results() {
  local logf=$1 commit s args=()
  shift
  local model_note="${pretrained_model:+pretrained from $pretrained_model, }train config \`${train_config:-none}\`, tokens \`$token_suffix\`"
  # Whisper brings its own tokenizer and was not trained here (--train_config/--nbpe do not apply)
  [[ $pretrained_model != whisper:* ]] || model_note="pretrained from $pretrained_model, Whisper's own tokens"
  local info=("recipe: \`$(basename "$(dirname "$PWD")")/$(basename "$PWD")\`"
    "last scored model: \`$asr_exp\` ($model_note)"
    "decode config: \`$inference_config\`${inference_args:+ + \`$inference_args\`}")
  if commit=$(git -C "$p4q_dir" rev-parse --short HEAD 2>/dev/null); then info+=("git: \`$commit\`"); fi
  for s in "${info[@]}"; do args+=(--info "$s"); done
  run_logged "$logf" "$python" -m espnet_p4q.bin.make_results --exp_dir "$expdir" --output RESULTS.md \
    "${args[@]}" "$@"
}

comparison_args() {  # the options of make_results for stage 11's comparison, one word a line
  local f
  printf '%s\n' --manifest "$asr_exp/compare/systems.json" --title "P4Q comparison: $(basename "$(dirname "$PWD")")"
  for f in utts rank; do  # sweeps of stages 12-13, when they have run
    [ ! -f "$asr_exp/sweep/sweep_$f.csv" ] || printf '%s\n' --sweep_csv "$asr_exp/sweep/sweep_$f.csv"
  done
}

# Stage 11: the P4Q comparison of --systems (their registry entries) on top of RESULTS.md.
stage_compare() {
  local dir=$asr_exp/compare sys texts=() sig words=()
  mkdir -p "$dir"
  run_logged "$dir/systems.log" "$python" -m espnet_p4q.bin.systems --registry "$systems_conf" manifest \
    --asr_exp "$asr_exp" --nf4_dir "$nf4_dir" --pretrained_adapter "$pretrained_adapter" \
    --systems "$systems" --output "$dir/systems.json"
  for sys in $systems; do texts+=("$asr_exp/decode_$sys"/*/text "$asr_exp/decode_$sys"/*/score_wer/wer.json); done
  mapfile -t words < <(comparison_args)
  sig=$(signature "${words[*]}" "$(file_hash "$dir/systems.json" "$sa_eval_list" "${texts[@]}" \
    "$asr_exp/sweep/sweep_utts.csv" "$asr_exp/sweep/sweep_rank.csv")")
  if is_done "$dir/.done" "$sig" && [ -f RESULTS.md ]; then
    log "Stage 11: comparison already made ($dir/RESULTS.md); skipping"
    return
  fi
  log "Stage 11: comparing ${systems} on the speakers of $sa_eval_list; log: $dir/compare.log"
  write_results "$dir/compare.log" "${words[@]}"
  need_file "$dir/RESULTS.md" RESULTS.md
  mark_done "$dir/.done" "$sig"
  log "Stage 11: RESULTS.md written ($dir/RESULTS.json holds the numbers)"
}

# ------------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------------
# Stages 12-13 (optional): WER sweeps on the evaluation speakers, hyperparameters as in stage 8.
# Each point is a per-speaker system (adapters of the eval speakers), decoded by decode_system;
# pyscripts write the points file, espnet_p4q.bin.plot_sweep the CSV and PNG, and RESULTS.md is
# remade with them when stage 11 has run.
sweep_point() {  # NAME ADAPT_DIR: decode the eval speakers' test sets with NAME's adapters
  local s
  register_system "$1" "$nf4_dir/config.yaml" "$nf4_dir/model.pth" "adapters:$2"
  # shellcheck disable=SC2046
  decode_system "$1" $(for s in $(read_list "$sa_eval_list"); do echo "${s}_test"; done)
}

decoded_eval_sets() {  # SYSTEM: true when it has decoded every eval speaker's test set
  local s
  for s in $(read_list "$sa_eval_list"); do [ -f "$asr_exp/decode_$1/${s}_test/.done" ] || return 1; done
}

write_sweep() {  # KIND X_NAME POINT... (POINT = system:x:decode_dir): points file, CSV, PNG
  local kind=$1 xname=$2 dir=$asr_exp/sweep
  shift 2
  run_logged "$dir/sweep_$kind.log" "$python" -m espnet_p4q.bin.systems --registry "$systems_conf" \
    sweep_points --x_name "$xname" --output "$dir/sweep_$kind.points.json" "$@"
  run_logged --append "$dir/sweep_$kind.log" "$python" -m espnet_p4q.bin.plot_sweep \
    --points "$dir/sweep_$kind.points.json" --csv "$dir/sweep_$kind.csv" --png "$dir/sweep_$kind.png" \
    --x_label "$xname" --log_x
  log "sweep $kind: $dir/sweep_$kind.csv and .png"
  if [ -f "$asr_exp/compare/.done" ]; then stage_compare; fi
}

stage_sweep_utts() {
  local spks sys n name adir points=()
  spks=$(read_list "$sa_eval_list")
  [ -n "$spks" ] || die "no speakers in $sa_eval_list"
  mkdir -p "$asr_exp/sweep"
  for sys in $sweep_utts_systems; do
    [ "${sys_mode[$sys]:-}" = lora ] ||
      die "--sweep_utts_systems: $sys is not a per-speaker LoRA system of $systems_conf"
    for n in $sweep_n_adapt; do
      [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "--sweep_n_adapt: '$n' is not a positive number of utterances"
      if [ "$n" = "$n_adapt" ] && decoded_eval_sets "$sys"; then  # stages 8-9 made this point
        points+=("$sys:$n:$asr_exp/decode_$sys")
        continue
      fi
      name=sweep_utts_${sys}_n$n
      adir=$asr_exp/sweep/adapt_${sys}_n$n
      adapt_speakers "$sys" "$adir" "$n" "$spks"
      sweep_point "$name" "$adir"
      points+=("$sys:$n:$asr_exp/decode_$name")
    done
  done
  write_sweep utts "adaptation utterances per speaker" "${points[@]}"
}

stage_sweep_rank() {
  local spks r rank name pdir adir points=()
  spks=$(read_list "$sa_eval_list")
  [ -n "$spks" ] || die "no speakers in $sa_eval_list"
  rank=$(awk '$1 == "rank:" { print $2 }' "$lora_conf")
  mkdir -p "$asr_exp/sweep"
  for r in $sweep_ranks; do
    if [ "$r" = "$rank" ] && decoded_eval_sets p4q; then  # stages 7-9 made this point
      points+=("p4q:$r:$asr_exp/decode_p4q")
      continue
    fi
    pdir=$asr_exp/sweep/lora_pretrain_r$r
    adir=$asr_exp/sweep/adapt_p4q_r$r
    name=sweep_rank_p4q_r$r
    pretrain_lora "$pdir" "$asr_exp/sweep/lora_pretrain_r$r.log" --lora_rank "$r"
    adapt_speakers p4q "$adir" "$n_adapt" "$spks" --lora_rank "$r" --init_adapter "$pdir/pretrain/adapter.pth"
    sweep_point "$name" "$adir"
    points+=("p4q:$r:$asr_exp/decode_$name")
  done
  write_sweep rank "LoRA rank" "${points[@]}"
}

mkdir -p "$expdir"
# One pipeline at a time per recipe directory: a second would rebuild the same temporary dirs.
exec 9> "$expdir/.p4q.lock"
if ! flock -n 9; then
  die "another p4q.sh holds $expdir/.p4q.lock (running in $PWD?); wait for it or stop it"
fi

log "$_cmdline"
log "recipe: $PWD; stages $stage-$stop_stage; experiment: $asr_exp; backend: $cmd_backend"
for s in $(printf '%s\n' "${_stage_nums[@]}" | sort -n); do
  if [ "$s" -ge "$stage" ] && [ "$s" -le "$stop_stage" ]; then
    t0=$(date +%s)
    "stage_${_stage_name[$s]}"
    log "Stage $s (${_stage_name[$s]}) finished in $(( $(date +%s) - t0 )) s"
  fi
done
log "Successfully finished."
