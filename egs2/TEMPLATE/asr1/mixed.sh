#!/usr/bin/env bash
# mixed.sh: mixed-precision k-bit NormalFloat chosen by KL sensitivity, and the "lossless" search.
#
# Run from a recipe directory (egs2/<corpus>/asr1, linked as ./mixed.sh) after p4q.sh's stages 1-5
# (data/ with sa_tune.list, sa_eval.list, <spk>_adapt, <spk>_test; <asr_exp>/config.yaml and
# base.pth). Everything it makes lies under --out_dir. './mixed.sh --help' lists stages and options.
#
#   1 sensitivity  KL table of every quantisation target at 2/3/4/8 bits on the tuning speakers'
#                  adaptation data (python -m espnet_p4q.bin.sensitivity)
#   2 allocate     one quant YAML per --budgets value (bits/param of the whole file, all counted;
#                  python -m espnet_p4q.bin.allocate)
#   3 quantize     uniform NF<k> for k in --uniform_bits and every allocation (espnet_p4q.bin.quantize)
#   4 decode_tune  FP32 and every model on the tuning speakers' test sets (espnet_p4q.bin.decode)
#   5 choose       size/WER table with MAPSSWE against FP32 on the tuning speakers; the smallest
#                  allocation not significantly worse than FP32 -> <out_dir>/chosen (espnet_p4q.bin.size_wer)
#   6 decode_eval  FP32, the uniform models and the chosen allocation on the evaluation speakers
#   7 report_eval  the same table on the evaluation speakers: eval.{csv,md,png}
#   8 p4q          on the chosen base (or --p4q_base): LoRA pretraining on --train_set, per-speaker LoRA of the
#                  evaluation speakers (first --n_adapt adapt utterances), decoding (espnet_p4q.bin.finetune)
#   9 report_p4q   eval_p4q.{csv,md}: stage 7's rows plus the P4Q-on-mixed rows, MAPSSWE against FP32
#                  and against their base
#
# Finished work is kept: a stage whose output exists is skipped (remove it to redo the stage).
set -euo pipefail

mixed_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
p4q_root=$(cd "$mixed_dir/../../.." && pwd)
cmdline="$0 $*"

log() {
  echo "$(date '+%Y-%m-%dT%H:%M:%S') (mixed.sh:${BASH_LINENO[0]}) $*" >&2
}
die() {
  log "ERROR: $*"
  exit 1
}

stage=1
stop_stage=7
asr_exp=exp/asr_pretrained_synth_sa_base
data_dir=data
out_dir=exp/mixed
quant_conf=$p4q_root/conf/quant/nf4.yaml
n_sens_utts=20
sens_bits="2 3 4 8"
budgets="3.0 3.2 3.35 3.45 3.55 3.8"
uniform_bits="2 3 4 8"
eval_uniform_bits=
inference_config=conf/decode.yaml
nj=2
eval_mixed=chosen
p4q_base=chosen
train_set=train
lora_conf=$p4q_root/conf/lora/rank4.yaml
lora_pretrain_config=conf/lora_pretrain.yaml
adapt_lora_config=conf/adapt_lora.yaml
n_adapt=30
train_threads=2
kbit_dequant=once
python=python

usage() {
  cat <<EOF
Usage: $0 [options]   (run from egs2/<corpus>/asr1)

Stages (see the head of $mixed_dir/mixed.sh): 1 sensitivity, 2 allocate, 3 quantize, 4 decode_tune,
5 choose, 6 decode_eval, 7 report_eval, 8 p4q (LoRA pretraining + per-speaker LoRA on the chosen
base), 9 report_p4q.

Options (current values):
  --stage $stage                first stage to run
  --stop_stage $stop_stage           last stage to run (8-9: P4Q on the chosen mixed base)
  --asr_exp $asr_exp   holds config.yaml and base.pth (FP32)
  --data_dir $data_dir              sa_tune.list, sa_eval.list, <spk>_adapt, <spk>_test, --train_set
  --out_dir $out_dir        everything this script makes
  --quant_conf $quant_conf
                                quantisation targets, block size, double_quant (the widths come from here on)
  --n_sens_utts $n_sens_utts            first N adapt utterances of each tuning speaker for the KL table
  --sens_bits "$sens_bits"      widths measured in the KL table
  --budgets "$budgets"
                                bits/param of the whole packed file (all counted), one allocation each
  --uniform_bits "$uniform_bits"   uniform NF<k> models for the comparison
  --eval_uniform_bits "$eval_uniform_bits"       those decoded on the evaluation speakers (empty: all of --uniform_bits)
  --inference_config $inference_config
  --nj $nj                      decoding processes at once (one thread each)
  --eval_mixed "$eval_mixed"         mixed models decoded on the evaluation speakers: chosen, all, or
                                names such as "mixed_3.55 mixed_4.3" (when none was lossless)
  --p4q_base $p4q_base             base of stage 8: the chosen allocation, or a model name (e.g. mixed_3.55)
  --train_set $train_set             LoRA pretraining data (stage 8)
  --lora_conf $lora_conf
  --lora_pretrain_config $lora_pretrain_config
  --adapt_lora_config $adapt_lora_config
  --n_adapt $n_adapt                adaptation utterances per evaluation speaker (stage 8)
  --train_threads $train_threads          torch threads of LoRA pretraining
  --kbit_dequant $kbit_dequant         P4Q_KBIT_DEQUANT of every step: once (a 2/3/8-bit weight is dequantised
                                once per process: FP32 matmuls and weight memory while running) or per_call
                                (at every use: k-bit memory; decoding a 2/3-bit Whisper is then slow)
  --python $python
EOF
}

. "$mixed_dir/utils/parse_options.sh"
[ $# -eq 0 ] || die "unexpected argument '$1' (see $0 --help)"

# Recipe environment (venv, PYTHONPATH), as p4q.sh: without it 'python' is whatever is on PATH.
if [ -f ./path.sh ]; then
  set +u
  # shellcheck disable=SC1091
  . ./path.sh
  set -u
fi

# ---- option values checked before any work -------------------------------------------------------
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in stage stop_stage n_sens_utts nj n_adapt train_threads; do
  is_int "${!v}" || die "--$v must be a non-negative integer, got '${!v}'"
done
[ "$stage" -ge 1 ] && [ "$stop_stage" -le 9 ] && [ "$stage" -le "$stop_stage" ] ||
  die "stages run from 1 to 9 and --stage <= --stop_stage (got $stage-$stop_stage)"
[ "$nj" -ge 1 ] || die "--nj must be at least 1"
case $kbit_dequant in once|per_call) ;; *) die "--kbit_dequant is once or per_call, got '$kbit_dequant'" ;; esac
export P4Q_KBIT_DEQUANT=$kbit_dequant  # espnet_p4q.quant.kbit_layers; the results are the same either way
for k in $sens_bits $uniform_bits; do
  case $k in 2|3|4|8) ;; *) die "bit widths are 2, 3, 4 or 8, got '$k'" ;; esac
done
[ -n "$budgets" ] || die "--budgets is empty"
for b in $budgets; do
  [[ $b =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--budgets: '$b' is not a number of bits per parameter"
done
[ -n "$eval_uniform_bits" ] || eval_uniform_bits=$uniform_bits
for k in $eval_uniform_bits; do
  [[ " $uniform_bits " == *" $k "* ]] || die "--eval_uniform_bits: $k is not among --uniform_bits ($uniform_bits)"
done
case $eval_mixed in
  chosen|all) ;;
  *) for _m in $eval_mixed; do
       [[ $_m =~ ^mixed_ ]] && [[ " $budgets " == *" ${_m#mixed_} "* ]] ||
         die "--eval_mixed is chosen, all or names mixed_<budget> of --budgets, got '$_m'"
     done ;;
esac
if [ "$p4q_base" != chosen ]; then
  _names=" $(for k in $uniform_bits; do printf 'nf%s ' "$k"; done)$(for b in $budgets; do printf 'mixed_%s ' "$b"; done)"
  [[ $_names == *" $p4q_base "* ]] || die "--p4q_base is chosen or one of:$_names; got '$p4q_base'"
fi
[ -f "$quant_conf" ] || die "no such file: --quant_conf $quant_conf"
! grep -qE '^(bits|mixed):' "$quant_conf" || die "$quant_conf already sets bits/mixed: give a uniform base config"
for f in "$data_dir/sa_tune.list" "$data_dir/sa_eval.list" "$inference_config"; do
  [ -f "$f" ] || die "missing $f"
done
if [ "$stop_stage" -ge 8 ]; then
  for f in "$lora_conf" "$lora_pretrain_config" "$adapt_lora_config" "$data_dir/$train_set/text"; do
    [ -f "$f" ] || die "missing $f (needed by stage 8)"
  done
fi
command -v "$python" >/dev/null || die "no python '$python'"

read_list() { sed -e 's/#.*//' "$1" | tr -s ' \t' '\n' | sed '/^$/d'; }
tune_spks=$(read_list "$data_dir/sa_tune.list")
eval_spks=$(read_list "$data_dir/sa_eval.list")
[ -n "$tune_spks" ] || die "no speakers in $data_dir/sa_tune.list"
[ -n "$eval_spks" ] || die "no speakers in $data_dir/sa_eval.list"
fp32_config=$asr_exp/config.yaml
fp32_model=$asr_exp/base.pth
models=$out_dir/models
decode=$out_dir/decode
mkdir -p "$out_dir/conf" "$out_dir/log"

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
uniform_names() { local k; for k in $uniform_bits; do echo "nf$k"; done; }
mixed_names() { local b; for b in $budgets; do echo "mixed_$b"; done; }
sets_of() { local s; for s in "$@"; do echo "$data_dir/${s}_test"; done; }

# decode_all SPEAKERS NAME...: decode the speakers' test sets with each model (FP32: fp32), --nj at once.
decode_all() {
  local spks=$1 name base s running=0
  shift
  for name in "$@"; do
    if [ "$name" = fp32 ]; then base="fp32:$fp32_config,$fp32_model"; else base="nf4:$models/$name"; fi
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=1 "$python" -m espnet_p4q.bin.decode --base "$base" --config "$inference_config" \
      --data_dirs $(sets_of $spks) --output_dir "$decode/$name" > "$out_dir/log/decode_$name.log" 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge "$nj" ]; then wait -n || true; running=$((running - 1)); fi
  done
  wait
  for name in "$@"; do
    for s in $spks; do
      [ -f "$decode/$name/${s}_test/decode.json" ] ||
        die "decoding $name of ${s}_test failed; log: $out_dir/log/decode_$name.log"
    done
  done
}

# size_wer SPEAKER_LIST PREFIX NAME...: the size/WER table of FP32 and the named models.
size_wer_args() {
  local name group
  printf '%s\n' --data_dir "$data_dir" --reference fp32 "$fp32_model" "$decode/fp32"
  for name in "$@"; do
    case $name in mixed_*) group=mixed ;; *) group=uniform ;; esac
    printf '%s\n' --system "$name" "$group" "$models/$name" "$decode/$name"
  done
}

chosen() {
  [ -s "$out_dir/chosen" ] || die "no mixed allocation was lossless on the tuning speakers ($out_dir/tune.md); add larger --budgets"
  cat "$out_dir/chosen"
}

timed() {  # timed STAGE_NAME FUNCTION: run and log the wall time
  local t0=$SECONDS
  log "Stage $1 start"
  "$2"
  log "Stage $1 done in $((SECONDS - t0)) s"
}

# ---- stages -------------------------------------------------------------------------------------
stage_sensitivity() {
  local out=$out_dir/sensitivity.csv s dirs=()
  if [ -f "$out" ]; then log "KL table exists ($out); skipping"; return; fi
  for s in $tune_spks; do dirs+=("$data_dir/${s}_adapt"); done
  # shellcheck disable=SC2086
  "$python" -m espnet_p4q.bin.sensitivity --asr_train_config "$fp32_config" --asr_model_file "$fp32_model" \
    --quant_conf "$quant_conf" --data_dirs "${dirs[@]}" --n_utts "$n_sens_utts" --bits $sens_bits \
    --eval_list "$data_dir/sa_eval.list" --output_csv "$out" > "$out_dir/log/sensitivity.log" 2>&1 ||
    die "sensitivity failed; log: $out_dir/log/sensitivity.log"
  grep -E "most sensitive|least sensitive" "$out_dir/log/sensitivity.log" | sed 's/.*INFO //' >&2
}

stage_allocate() {
  local b out
  for b in $budgets; do
    out=$out_dir/conf/mixed_$b.yaml
    [ ! -f "$out" ] || continue
    "$python" -m espnet_p4q.bin.allocate --sensitivity "$out_dir/sensitivity.csv" --budget "$b" \
      --asr_train_config "$fp32_config" --asr_model_file "$fp32_model" --quant_conf "$quant_conf" \
      --output_yaml "$out" > "$out_dir/log/allocate_$b.log" 2>&1 || die "allocation failed; log: $out_dir/log/allocate_$b.log"
    grep "budget" "$out_dir/log/allocate_$b.log" | sed 's/.*INFO //' >&2
  done
}

stage_quantize() {
  local k name conf
  for k in $uniform_bits; do  # the base config with one width for every target
    conf=$out_dir/conf/nf$k.yaml
    if [ "$k" = 4 ]; then cp "$quant_conf" "$conf"; else { cat "$quant_conf"; echo "bits: $k"; } > "$conf"; fi
  done
  for name in $(uniform_names) $(mixed_names); do
    [ ! -f "$models/$name/size.json" ] || continue
    "$python" -m espnet_p4q.bin.quantize --asr_train_config "$fp32_config" --asr_model_file "$fp32_model" \
      --quant_conf "$out_dir/conf/$name.yaml" --output_dir "$models/$name" > "$out_dir/log/quantize_$name.log" 2>&1 ||
      die "quantisation failed; log: $out_dir/log/quantize_$name.log"
    log "$name: $(grep -m1 'FP32' "$out_dir/log/quantize_$name.log" | sed 's/.*INFO //')"
  done
}

stage_decode_tune() {
  # shellcheck disable=SC2046
  decode_all "$tune_spks" fp32 $(uniform_names) $(mixed_names)
}

stage_choose() {
  local m choose=()
  mapfile -t choose < <(mixed_names)
  # shellcheck disable=SC2046
  "$python" -m espnet_p4q.bin.size_wer --speaker_list "$data_dir/sa_tune.list" \
    $(size_wer_args $(uniform_names) $(mixed_names)) --choose_among "${choose[@]}" \
    --csv "$out_dir/tune.csv" --markdown "$out_dir/tune.md" --png "$out_dir/tune.png" \
    --title "tuning speakers: file size vs WER" --lossless_to "$out_dir/chosen" >&2
  m=$(cat "$out_dir/chosen")
  log "smallest allocation not significantly worse than FP32 on the tuning speakers: ${m:-none}"
}

eval_names() {
  local k
  for k in $eval_uniform_bits; do echo "nf$k"; done
  case $eval_mixed in
    all) mixed_names ;;
    chosen) chosen ;;
    *) printf '%s\n' $eval_mixed ;;
  esac
}

stage_decode_eval() {
  [ "$eval_mixed" != chosen ] || chosen > /dev/null  # dies here when nothing was chosen
  # shellcheck disable=SC2046
  decode_all "$eval_spks" fp32 $(eval_names)
}

stage_report_eval() {
  [ "$eval_mixed" != chosen ] || chosen > /dev/null
  # shellcheck disable=SC2046
  "$python" -m espnet_p4q.bin.size_wer --speaker_list "$data_dir/sa_eval.list" $(size_wer_args $(eval_names)) \
    --csv "$out_dir/eval.csv" --markdown "$out_dir/eval.md" --png "$out_dir/eval.png" \
    --title "evaluation speakers: file size vs WER" >&2
}

all_adapted() {
  local s
  for s in $eval_spks; do [ -f "$out_dir/p4q/adapt/$s/adapter.pth" ] || return 1; done
}

p4q_base_name() {
  if [ "$p4q_base" = chosen ]; then chosen; else echo "$p4q_base"; fi
}

stage_p4q() {
  local base p=$out_dir/p4q s name
  name=$(p4q_base_name)
  base=$models/$name
  mkdir -p "$p"
  if [ ! -f "$p/lora_pretrain/pretrain/adapter.pth" ]; then
    log "LoRA pretraining on $data_dir/$train_set over $base ($train_threads threads); log: $out_dir/log/lora_pretrain.log"
    OMP_NUM_THREADS=$train_threads "$python" -m espnet_p4q.bin.finetune --base "nf4:$base" --mode lora \
      --lora_conf "$lora_conf" --train_conf "$lora_pretrain_config" --data_dirs "$data_dir/$train_set" \
      --names pretrain --output_dir "$p/lora_pretrain" > "$out_dir/log/lora_pretrain.log" 2>&1 ||
      die "LoRA pretraining failed; log: $out_dir/log/lora_pretrain.log"
  fi
  for s in $eval_spks; do echo "$s $data_dir/${s}_adapt"; done > "$p/adapt.list"
  if ! all_adapted; then
    log "per-speaker LoRA from the pretrained adapter, first $n_adapt utterances; log: $out_dir/log/adapt.log"
    OMP_NUM_THREADS=1 "$python" -m espnet_p4q.bin.finetune --base "nf4:$base" --mode lora --lora_conf "$lora_conf" \
      --init_adapter "$p/lora_pretrain/pretrain/adapter.pth" --train_conf "$adapt_lora_config" \
      --n_utts "$n_adapt" --data_list "$p/adapt.list" --output_dir "$p/adapt" > "$out_dir/log/adapt.log" 2>&1 ||
      die "adaptation failed; log: $out_dir/log/adapt.log"
  fi
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=1 "$python" -m espnet_p4q.bin.decode --base "nf4:$base" --config "$inference_config" \
    --adapter_dir "$p/adapt" --data_dirs $(sets_of $eval_spks) --output_dir "$decode/p4q_mixed" \
    > "$out_dir/log/decode_p4q_mixed.log" 2>&1 &
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=1 "$python" -m espnet_p4q.bin.decode --base "nf4:$base" --config "$inference_config" \
    --adapter "$p/lora_pretrain/pretrain/adapter.pth" --data_dirs $(sets_of $eval_spks) \
    --output_dir "$decode/lora_pretrain_mixed" > "$out_dir/log/decode_lora_pretrain_mixed.log" 2>&1 || true
  wait
  decode_all "$eval_spks" "$name"  # the base itself (already done when stage 6 decoded it)
  for s in $eval_spks; do
    for name in p4q_mixed lora_pretrain_mixed; do
      [ -f "$decode/$name/${s}_test/decode.json" ] || die "decoding $name failed; log: $out_dir/log/decode_$name.log"
    done
  done
}

stage_report_p4q() {
  local m p=$out_dir/p4q
  m=$(p4q_base_name)
  [ "$eval_mixed" != chosen ] || chosen > /dev/null
  # shellcheck disable=SC2046
  "$python" -m espnet_p4q.bin.size_wer --speaker_list "$data_dir/sa_eval.list" \
    $(size_wer_args $( (eval_names; echo "$m") | awk '!seen[$0]++')) \
    --system lora_pretrain_mixed p4q "$models/$m,$p/lora_pretrain/pretrain/adapter.pth" "$decode/lora_pretrain_mixed" \
    --system p4q_mixed p4q "$models/$m,$p/lora_pretrain/pretrain/adapter.pth" "$decode/p4q_mixed" \
    --vs p4q_mixed "$m" --vs lora_pretrain_mixed "$m" \
    --csv "$out_dir/eval_p4q.csv" --markdown "$out_dir/eval_p4q.md" >&2
}

log "$cmdline: stages $stage-$stop_stage, out_dir $out_dir"
run_stage 1 && timed "1 (sensitivity)" stage_sensitivity
run_stage 2 && timed "2 (allocate)" stage_allocate
run_stage 3 && timed "3 (quantize)" stage_quantize
run_stage 4 && timed "4 (decode_tune)" stage_decode_tune
run_stage 5 && timed "5 (choose)" stage_choose
run_stage 6 && timed "6 (decode_eval)" stage_decode_eval
run_stage 7 && timed "7 (report_eval)" stage_report_eval
run_stage 8 && timed "8 (p4q)" stage_p4q
run_stage 9 && timed "9 (report_p4q)" stage_report_p4q
log "done"
