#!/usr/bin/env bash
# TED-LIUM 3 data for the P4Q speaker-adaptation recipe: download (resumable, checksummed) and
# Kaldi data dirs. Run from the recipe directory (egs2/tedlium3_sa/asr1), as ESPnet does.
# shellcheck source=../../../../local/data_sh_head.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../../local/data_sh_head.sh"  # strict mode, $recipe, $repo, common options

# this recipe's option defaults; those of every paper-scale recipe are set in local/data_sh_head.sh
stop_stage=4
include_test=false
unk=keep
audio=sox
segments=true
sa_talks=$recipe/conf/sa_talks.txt
excluded=$recipe/conf/sa_partition_excluded.txt
mirrors="https://www.openslr.org/resources/51 https://us.openslr.org/resources/51 https://openslr.elda.org/resources/51"
dump_dir=""
dump_nj=8
options="excluded include_test unk audio segments sa_talks dump_dir dump_nj"  # besides the common ones

usage() {
  cat <<EOF
Usage: local/data.sh [--name value ...]
Stages:
  1  download TEDLIUM_release-3.tgz (about 51 GB) into \$TEDLIUM3 (db.sh; now: ${TEDLIUM3:-downloads})
     and extract it, or use a TEDLIUM_release-3/ already extracted there. The archive is checked
     against --checksums; the download resumes; a finished extraction is marked.
  2  write Kaldi dirs (local/tedlium.py; segments + one wav.scp pipe per talk): \$datadir/train
     (talks of TEDLIUM_release-3/data minus the SA, legacy dev and legacy test talks),
     \$datadir/dev (legacy dev), [\$datadir/test (legacy test)], \$datadir/local/sa_pool (the SA
     talks' segments). Segments marked ignore_time_segment_in_scoring are left out; text is
     upper-cased, clitics rejoined. Then the top-level local/sa_dirs.py writes for each SA talk T
     \$datadir/T_adapt and \$datadir/T_test by --sa_partition, and \$datadir/sa_tune.list, sa_eval.list:
       paper    the P4Q authors' partition (--partition): train -> adapt, test -> test, dev held
                out (not written: no stage reads it). Their ids <talk>_<k> are derived from the
                STM (k: index among the talk's segments without <unk>); where that does not give
                exactly the listed ids (--partition + --excluded) the stage stops
       ordered  a talk's segments in time order: first --n_adapt adapt, next --n_dev held out,
                the rest test (this recipe's earlier rule)
  3  validate: dirs without segments with python -m espnet_p4q.bin.validate_data_dir (if it
     exists), dirs with segments with local/tedlium.py check.
  4  only with --dump_dir: cut every utterance of those dirs into its own 16 kHz 16-bit flac file,
     --dump_dir/<dir>/<utt>.flac (local/dump_audio.py, --dump_nj processes), rewrite each dir's
     wav.scp to list the files and drop its segments, then validate. espnet2's 'sound' reader
     (p4q.sh's training, statistics and decoding) reads plain files only: neither segments nor
     'cmd |' pipes. Finished dirs are skipped on a re-run.
Options (default):
$(common_options_help 20)
  --excluded FILE      paper: indexed segments in no split (conf/sa_partition_excluded.txt)
  --n_adapt N          paper: keep the first N of the train split, 0 = all; ordered: adapt size ($n_adapt)
  --n_dev N            ordered: segments held out after the adapt ones ($n_dev)
  --include_test B     also write \$datadir/test from legacy/test ($include_test)
  --unk keep|drop      keep TED-LIUM's <unk> tokens in the text or drop them ($unk)
  --audio sox|sph2pipe decoder in the wav.scp pipes ($audio)
  --segments B         true: segments file; false: one 'sox ... trim' pipe per utterance ($segments)
  --sa_talks FILE      SA talk ids (conf/sa_talks.txt)
  --sa_split FILE      tune/eval talks (conf/sa_split.yaml)
  --checksums FILE     expected archive digest (conf/sa_archives.txt)
  --mirrors "URL ..."  openslr base URLs, tried in order ($mirrors)
  --keep_archives B    keep the .tgz after extraction ($keep_archives)
  --dump_dir DIR       stage 4: where the per-utterance audio goes; empty: no dump ("$dump_dir")
  --dump_nj N          stage 4: parallel processes ($dump_nj)
Environment: TEDLIUM3 (overrides db.sh), PYTHON (interpreter, default python3).
EOF
}

parse_data_sh_options "$@"
[[ $dump_nj =~ ^[1-9][0-9]*$ ]] || die "--dump_nj must be a positive number, got '$dump_nj'"
if [[ $sa_partition == paper ]]; then
  for f in "$partition" "$excluded"; do [ -f "$f" ] || die "$f: no such file"; done
fi
talks=$(speaker_ids "$sa_talks" talks)

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: corpus in $TEDLIUM3"
  mkdir -p "$TEDLIUM3"
  existing=$TEDLIUM3/TEDLIUM_release-3/data/stm
  if [ ! -d "$existing" ] && [ -d "$TEDLIUM3/data/stm" ]; then existing=$TEDLIUM3/data/stm; fi
  fetch_archive "$TEDLIUM3" TEDLIUM_release-3 --existing "$existing"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: data dirs in $datadir"
  index_args=()
  if [[ $sa_partition == paper ]]; then index_args+=(--partition "$partition" --excluded "$excluded"); fi
  "$python" "$recipe/local/tedlium.py" prepare --corpus "$TEDLIUM3" --datadir "$datadir" \
    --sa_talks "$sa_talks" --include_test "$include_test" --unk "$unk" --audio "$audio" \
    --segments "$segments" "${index_args[@]}"
  write_sa_dirs
fi

# The dirs stage 2 writes (those that exist).
dirs=("$datadir/train" "$datadir/dev")
if $include_test; then dirs+=("$datadir/test"); fi
for t in $talks; do
  spk=$(printf '%s' "$t" | tr -c 'A-Za-z0-9_' '_')
  for s in adapt test; do
    if [ -d "$datadir/${spk}_$s" ]; then dirs+=("$datadir/${spk}_$s"); fi
  done
done

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: validating"
  plain=() segmented=()
  for d in "${dirs[@]}"; do
    if [ -f "$d/segments" ]; then segmented+=("$d"); else plain+=("$d"); fi
  done
  if [ ${#segmented[@]} -gt 0 ]; then
    "$python" "$recipe/local/tedlium.py" check "${segmented[@]}"
  fi
  if [ ${#plain[@]} -gt 0 ]; then
    if "$python" -c 'import espnet_p4q.data.validate' 2>/dev/null; then
      "$python" -m espnet_p4q.bin.validate_data_dir "${plain[@]}"
    else
      log "espnet_p4q.data.validate not available; validation skipped"
    fi
  fi
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  if [ -z "$dump_dir" ]; then
    log "stage 4: no --dump_dir: the dirs keep their segments / pipes"
  else
    log "stage 4: one audio file per utterance in $dump_dir"
    "$python" "$recipe/local/dump_audio.py" --dump_dir "$dump_dir" --nj "$dump_nj" "${dirs[@]}"
    if "$python" -c 'import espnet_p4q.data.validate' 2>/dev/null; then
      "$python" -m espnet_p4q.bin.validate_data_dir "${dirs[@]}"
    fi
  fi
fi
log "done"
