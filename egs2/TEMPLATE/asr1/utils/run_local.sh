#!/usr/bin/env bash
# Run a command as N parallel jobs on this machine (the local job backend; same interface as
# utils/run_slurm.sh, chosen in cmd.sh).
#
#   utils/run_local.sh [options] [JOB=1:N] LOGFILE COMMAND [ARGS...]
#
# With JOB=1:N (any variable name works, e.g. SPLIT=2:5), jobs 1..N run in parallel and every
# occurrence of the name JOB in LOGFILE and in the command is replaced by the job's index. Without
# it, one job runs. Each job's stdout and stderr go to its log file, framed by a header (the command,
# start time) and a trailer ('# Ended (code N) at ...'). The exit status is 0 only when every job
# succeeded; otherwise the failed logs are named and the tail of the first is printed.
#
# Words of the command are joined with spaces; a word holding whitespace is quoted, a word without
# is passed as is (so a lone '|' or '>' acts as shell syntax, as with Kaldi's run.pl).
#
# Options (the resource options are accepted for compatibility with run_slurm.sh and ignored):
#   --max_jobs_run N   at most N jobs at a time (default: all)
#   --gpu N  --mem SIZE  --num_threads N  --time LIMIT
set -u

max_jobs_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --max_jobs_run) max_jobs_run=$2; shift 2 ;;
    --gpu|--mem|--num_threads|--time) shift 2 ;;
    --max_jobs_run=*) max_jobs_run=${1#*=}; shift ;;
    --gpu=*|--mem=*|--num_threads=*|--time=*) shift ;;
    --help|-h) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if ! [[ $max_jobs_run =~ ^[0-9]+$ ]]; then
  echo "$0: --max_jobs_run takes a non-negative integer, not '$max_jobs_run'" >&2; exit 2
fi

# shellcheck source=utils/job_args.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_args.sh"

statusdir=$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")

run_one() {  # job index
  local i=$1 log c start rc
  log=$logfile c=$cmd
  if [ -n "$jobvar" ]; then log=${log//$jobvar/$i}; c=${c//$jobvar/$i}; fi
  mkdir -p "$(dirname "$log")"
  start=$(date +%s)
  {
    echo "# $c"
    echo "# Started at $(date) on $(hostname)"
  } > "$log"
  bash -c "$c" >> "$log" 2>&1 < /dev/null
  rc=$?
  {
    echo "# Accounting: time=$(( $(date +%s) - start )) threads=${OMP_NUM_THREADS:-?}"
    echo "# Ended (code $rc) at $(date)"
  } >> "$log"
  echo "$rc" > "$statusdir/$i"
  return $rc
}

kill_tree() {  # pid: signal the process and all its descendants, children first
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null
}

pids=()
cleanup() {
  local p
  trap - INT TERM
  for p in "${pids[@]}"; do kill_tree "$p"; done
  wait 2>/dev/null
  rm -rf "$statusdir"
  echo "$0: interrupted; jobs stopped (logs: $logfile)" >&2
  exit 130
}
trap cleanup INT TERM

for (( i = first; i <= last; i++ )); do
  if [ "$max_jobs_run" -gt 0 ]; then
    while [ "$(jobs -pr | wc -l)" -ge "$max_jobs_run" ]; do wait -n 2>/dev/null || true; done
  fi
  run_one "$i" &
  pids+=($!)
done
wait
trap - INT TERM

failed=()
for (( i = first; i <= last; i++ )); do
  if [ "$(cat "$statusdir/$i" 2>/dev/null)" != 0 ]; then failed+=("$i"); fi
done
rm -rf "$statusdir"

if [ ${#failed[@]} -gt 0 ]; then
  first_log=$logfile
  [ -n "$jobvar" ] && first_log=${logfile//$jobvar/${failed[0]}}
  n=$((last - first + 1))
  show_failure "${#failed[@]} / $n failed (jobs: ${failed[*]})" "$first_log"
  exit 1
fi
exit 0
