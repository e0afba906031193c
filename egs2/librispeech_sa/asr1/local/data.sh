#!/usr/bin/env bash
# LibriSpeech data for the P4Q speaker-adaptation recipe: download (resumable, checksummed) and
# Kaldi data dirs. Run from the recipe directory (egs2/librispeech_sa/asr1), as ESPnet does.
# shellcheck source=../../../../local/data_sh_head.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../../local/data_sh_head.sh"  # strict mode, $recipe, $repo, common options

# this recipe's option defaults; those of every paper-scale recipe are set in local/data_sh_head.sh
stop_stage=3
include_test_clean=false
audio=sox
sa_speakers=$recipe/conf/sa_speakers.txt
mirrors="https://www.openslr.org/resources/12 https://us.openslr.org/resources/12 https://openslr.elda.org/resources/12"
sa_extract_all=false
options="include_test_clean audio sa_speakers sa_extract_all"  # besides the common ones

usage() {
  cat <<EOF
Usage: local/data.sh [--name value ...]
Stages:
  1  download dev-clean, train-clean-100 (and test-clean) and the SA readers of train-clean-360
     into \$LIBRISPEECH (db.sh; now: ${LIBRISPEECH:-downloads}), or use a copy already extracted
     there. Archives are checked against --checksums; downloads resume; done parts are marked.
  2  write Kaldi dirs (local/librispeech.py): \$datadir/train (train-clean-100), \$datadir/dev
     (dev-clean), [\$datadir/test_clean], \$datadir/local/sa_pool (the SA readers' utterances);
     then the top-level local/sa_dirs.py writes for each SA reader R \$datadir/lsR_adapt and
     \$datadir/lsR_test by --sa_partition, and \$datadir/sa_tune.list, sa_eval.list:
       paper    the P4Q authors' partition (--partition): train -> adapt, test -> test, dev held
                out (not written: no stage reads it); every listed id must be in the corpus copy
       ordered  a reader's utterances in reading order (chapter, then utterance number): first
                --n_adapt adapt, next --n_dev held out, the rest test (this recipe's earlier rule)
  3  validate the dirs (python -m espnet_p4q.bin.validate_data_dir), if that validator exists.
Options (default):
$(common_options_help 22)
  --n_adapt N            paper: keep the first N of the train split, 0 = all; ordered: adapt size ($n_adapt)
  --n_dev N              ordered: utterances held out after the adapt ones ($n_dev)
  --include_test_clean B also download test-clean and write \$datadir/test_clean ($include_test_clean)
  --audio KIND           wav.scp entries: sox ('sox F -t wav - |'), flac ('flac -c -d -s F |')
                         or path (the .flac path itself) ($audio)
  --sa_speakers FILE     SA reader ids (conf/sa_speakers.txt)
  --sa_split FILE        tune/eval readers (conf/sa_split.yaml)
  --checksums FILE       expected archive digests (conf/sa_archives.txt)
  --mirrors "URL ..."    openslr base URLs, tried in order ($mirrors)
  --sa_extract_all B     extract all of train-clean-360 instead of the SA readers ($sa_extract_all)
  --keep_archives B      keep the .tar.gz files after extraction ($keep_archives)
Environment: LIBRISPEECH (overrides db.sh), PYTHON (interpreter, default python3).
EOF
}

parse_data_sh_options "$@"
if [[ $sa_partition == paper ]] && [ ! -f "$partition" ]; then die "--partition $partition: no such file"; fi
readers=$(speaker_ids "$sa_speakers" readers)

# Where a part already lies (LibriSpeech/<part> as unpacked, or <part> directly).
part_dir() {
  if [ ! -d "$LIBRISPEECH/LibriSpeech/$1" ] && [ -d "$LIBRISPEECH/$1" ]; then echo "$LIBRISPEECH/$1"
  else echo "$LIBRISPEECH/LibriSpeech/$1"; fi
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: corpus in $LIBRISPEECH"
  mkdir -p "$LIBRISPEECH"
  parts="dev-clean train-clean-100"
  if $include_test_clean; then parts="$parts test-clean"; fi
  for part in $parts; do
    fetch_archive "$LIBRISPEECH" "$part" --existing "$(part_dir "$part")"
  done
  sa_args=()
  if $sa_extract_all; then
    sa_args+=(--existing "$(part_dir train-clean-360)")
  else
    for r in $readers; do
      sa_args+=(--member "LibriSpeech/train-clean-360/$r" --existing "$(part_dir train-clean-360)/$r")
    done
  fi
  fetch_archive "$LIBRISPEECH" train-clean-360 "${sa_args[@]}"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: data dirs in $datadir"
  test_args=()
  if $include_test_clean; then test_args+=(--test_part test-clean); fi
  "$python" "$recipe/local/librispeech.py" --corpus "$LIBRISPEECH" --datadir "$datadir" \
    --sa_speakers "$sa_speakers" --audio "$audio" "${test_args[@]}"
  write_sa_dirs
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  if "$python" -c 'import espnet_p4q.data.validate' 2>/dev/null; then
    log "stage 3: validating"
    dirs=("$datadir/train" "$datadir/dev")
    if $include_test_clean; then dirs+=("$datadir/test_clean"); fi
    for r in $readers; do
      for s in adapt test; do
        if [ -d "$datadir/ls${r}_$s" ]; then dirs+=("$datadir/ls${r}_$s"); fi
      done
    done
    "$python" -m espnet_p4q.bin.validate_data_dir "${dirs[@]}"
  else
    log "stage 3: espnet_p4q.data.validate not available; validation skipped"
  fi
fi
log "done"
