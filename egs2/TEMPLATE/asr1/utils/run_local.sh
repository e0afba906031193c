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

jobvar="" first=1 last=1
if [[ $# -gt 0 && $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+):([0-9]+)$ ]]; then
  jobvar=${BASH_REMATCH[1]} first=${BASH_REMATCH[2]} last=${BASH_REMATCH[3]}
  shift
  if [ "$last" -lt "$first" ]; then echo "$0: empty job range $jobvar=$first:$last" >&2; exit 2; fi
elif [[ $# -gt 0 && $1 =~ ^[A-Za-z_][A-Za-z0-9_]*=[0-9]+$ ]]; then
  jobvar=${1%%=*} first=${1#*=} last=$first
  shift
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [options] [JOB=1:N] LOGFILE COMMAND [ARGS...]" >&2; exit 2
fi
logfile=$1; shift
if [ -n "$jobvar" ] && [[ $logfile != *"$jobvar"* ]] && [ "$first" != "$last" ]; then
  echo "$0: the log file name must contain $jobvar when running several jobs: $logfile" >&2; exit 2
fi

cmd=""
for word in "$@"; do
  if [[ $word =~ [[:space:]] || -z $word ]]; then
    printf -v word '%q' "$word"
  fi
  cmd+="$word "
done
cmd=${cmd% }

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
  echo "$0: ${#failed[@]} / $n failed (jobs: ${failed[*]}), log is in $first_log" >&2
  if [ -f "$first_log" ]; then
    echo "---- last lines of $first_log ----" >&2
    tail -n 20 "$first_log" >&2
    echo "----" >&2
  fi
  exit 1
fi
exit 0
