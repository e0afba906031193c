#!/usr/bin/env bash
# Run a command as N jobs of a Slurm job array and wait for them (the Slurm job backend; same
# interface as utils/run_local.sh, chosen in cmd.sh).
#
#   utils/run_slurm.sh [options] [JOB=1:N] LOGFILE COMMAND [ARGS...]
#
# One 'sbatch --wait --array=1-N' submission; task i replaces the name JOB by i in LOGFILE and in the
# command, runs it from the current directory with the current environment (sbatch --export=ALL)
# and writes its output to its log file, framed like run_local.sh's. The exit status is 0 only when
# every task ended with status 0; a task that Slurm stops (scancel, time limit) ends its log with
# code 143, and a submission sbatch refuses (e.g. more CPUs or memory than a node has) is reported
# with sbatch's message. Tasks of an earlier run of the same step (same LOGFILE) that are still
# queued or running are cancelled first. A task's OMP_NUM_THREADS is at most its --num_threads
# (unset or larger values are lowered to it). The batch script and Slurm's own output are kept in
# <dir of LOGFILE>/q/.
# Options take 'NAME VALUE' or 'NAME=VALUE'.
#
# Options:
#   --max_jobs_run N   at most N tasks at a time (--array=1-N%M)
#   --gpu N            --gres=gpu:N (when N > 0)
#   --mem SIZE         --mem=SIZE
#   --num_threads N    --cpus-per-task=N
#   --time LIMIT       --time=LIMIT
#   --sbatch_opts 'OPTS'  further sbatch options, e.g. '--partition=gpu --account=abc'
#                      (also read from $P4Q_SBATCH_OPTS)
set -u

max_jobs_run=0 gpu=0 mem="" num_threads="" time_limit="" sbatch_opts=${P4Q_SBATCH_OPTS:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --max_jobs_run) max_jobs_run=$2; shift 2 ;;
    --gpu) gpu=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --num_threads) num_threads=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --sbatch_opts) sbatch_opts="$sbatch_opts $2"; shift 2 ;;
    --max_jobs_run=*) max_jobs_run=${1#*=}; shift ;;
    --gpu=*) gpu=${1#*=}; shift ;;
    --mem=*) mem=${1#*=}; shift ;;
    --num_threads=*) num_threads=${1#*=}; shift ;;
    --time=*) time_limit=${1#*=}; shift ;;
    --sbatch_opts=*) sbatch_opts="$sbatch_opts ${1#*=}"; shift ;;
    --help|-h) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done

for pair in "max_jobs_run:$max_jobs_run" "gpu:$gpu" "num_threads:${num_threads:-1}"; do
  if ! [[ ${pair#*:} =~ ^[0-9]+$ ]]; then
    echo "$0: --${pair%%:*} takes a non-negative integer, not '${pair#*:}'" >&2; exit 2
  fi
done

# shellcheck source=utils/job_args.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_args.sh"
command -v sbatch >/dev/null || { echo "$0: sbatch not found (is this a Slurm host?)" >&2; exit 1; }

logdir=$(dirname "$logfile")
qdir=$logdir/q
mkdir -p "$qdir"
base=$(basename "$logfile" .log)
[ -n "$jobvar" ] && base=${base//$jobvar/}
base=${base//[^A-Za-z0-9_.]/_}
while [[ $base == *..* ]]; do base=${base//../.}; done
base=${base#.}
base=${base%.}
[ -n "$base" ] || base=job
script=$qdir/$base.sh
statusdir=$qdir/$base.status

# A run of this step that was killed before it could cancel its array (SIGKILL, a lost login
# session) leaves its tasks to Slurm; they would write into this run's logs and outputs.
old_id=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$qdir/$base.sbatch.out" 2>/dev/null | head -n 1)
still_queued() { squeue -h -j "$old_id" -n "$base" -t PD,R,CG,CF,S -o %i 2>/dev/null | grep -q .; }
if [ -n "$old_id" ] && command -v squeue >/dev/null && still_queued; then
  echo "$0: cancelling Slurm job $old_id, left by an earlier run of this step ($qdir)" >&2
  scancel "$old_id"
  for (( t = 0; t < 300; t++ )); do still_queued || break; sleep 1; done
fi
rm -rf "$statusdir"
mkdir -p "$statusdir"

# The batch script: task index from Slurm, JOB substituted at run time.
{
  echo '#!/usr/bin/env bash'
  printf 'cd %q || exit 1\n' "$PWD"
  printf 'template_cmd=%q\n' "$cmd"
  printf 'template_log=%q\n' "$logfile"
  printf 'jobvar=%q\n' "$jobvar"
  printf 'statusdir=%q\n' "$statusdir"
  cat <<'BODY'
i=${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}
c=$template_cmd log=$template_log
if [ -n "$jobvar" ]; then c=${c//$jobvar/$i}; log=${log//$jobvar/$i}; fi
mkdir -p "$(dirname "$log")"
child=""
stopped() {  # Slurm ends a task with SIGTERM (scancel, time limit), SIGKILL after KillWait
  trap - TERM INT
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  echo "# Ended (code 143: stopped by Slurm, e.g. scancel or time limit) at $(date)" >> "$log"
  echo 143 > "$statusdir/$i"
  exit 143
}
trap stopped TERM INT
# Threads: at most the CPUs Slurm gave the task (the submitting host may have many more).
if [[ ${SLURM_CPUS_PER_TASK:-} =~ ^[0-9]+$ ]] && ! [[ ${OMP_NUM_THREADS:-x} =~ ^[0-9]+$ \
    && ${OMP_NUM_THREADS:-0} -le $SLURM_CPUS_PER_TASK ]]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi
start=$(date +%s)
{
  echo "# $c"
  echo "# Started at $(date) on $(hostname) (Slurm job ${SLURM_ARRAY_JOB_ID:-?}_$i)"
} > "$log"
bash -c "$c" >> "$log" 2>&1 < /dev/null &
child=$!
wait "$child"
rc=$?
trap - TERM INT
{
  echo "# Accounting: time=$(( $(date +%s) - start )) threads=${OMP_NUM_THREADS:-?}" \
    "cpus=${SLURM_CPUS_PER_TASK:-?}"
  echo "# Ended (code $rc) at $(date)"
} >> "$log"
echo "$rc" > "$statusdir/$i"
exit $rc
BODY
} > "$script"
chmod +x "$script"

array="$first-$last"
[ "$max_jobs_run" -gt 0 ] && array="$array%$max_jobs_run"
opts=(--wait --export=ALL --job-name="$base" --array="$array" --output="$qdir/$base.%a.out")
[ "$gpu" -gt 0 ] && opts+=(--gres="gpu:$gpu")
[ -n "$mem" ] && opts+=(--mem="$mem")
[ -n "$num_threads" ] && opts+=(--cpus-per-task="$num_threads")
[ -n "$time_limit" ] && opts+=(--time="$time_limit")
# shellcheck disable=SC2206
[ -n "${sbatch_opts// /}" ] && opts+=($sbatch_opts)

# sbatch --wait prints 'Submitted batch job ID' at once, then waits; when this script is stopped,
# the array is cancelled so that no task keeps writing into a directory a restarted run will use.
cancel() {
  trap - INT TERM
  local id
  id=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$qdir/$base.sbatch.out" 2>/dev/null | head -n 1)
  [ -n "$id" ] && command -v scancel >/dev/null && scancel "$id"
  [ -n "${sbatch_pid:-}" ] && kill -TERM "$sbatch_pid" 2>/dev/null
  echo "$0: interrupted; Slurm job ${id:-?} cancelled (logs: $logfile)" >&2
  exit 130
}
trap cancel INT TERM
sbatch "${opts[@]}" "$script" > "$qdir/$base.sbatch.out" 2>&1 &
sbatch_pid=$!
wait "$sbatch_pid"
sbatch_rc=$?
trap - INT TERM

failed=()
for (( i = first; i <= last; i++ )); do
  if [ "$(cat "$statusdir/$i" 2>/dev/null)" != 0 ]; then failed+=("$i"); fi
done
if ! grep -q '^Submitted batch job' "$qdir/$base.sbatch.out"; then
  echo "$0: sbatch refused the job (exit $sbatch_rc; $qdir/$base.sbatch.out):" >&2
  sed 's/^/  /' "$qdir/$base.sbatch.out" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ] || [ "$sbatch_rc" -ne 0 ]; then
  first_log=$logfile
  [ -n "$jobvar" ] && [ ${#failed[@]} -gt 0 ] && first_log=${logfile//$jobvar/${failed[0]}}
  n=$((last - first + 1))
  show_failure "${#failed[@]} / $n failed (jobs: ${failed[*]:-none}; sbatch exit $sbatch_rc, see $qdir/$base.sbatch.out)" "$first_log"
  exit 1
fi
exit 0
