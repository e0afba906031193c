# Sourced by run_local.sh and run_slurm.sh once their own options are read: takes
# "[JOB=1:N] LOGFILE COMMAND [ARGS...]" from "$@" into jobvar, first, last, logfile and cmd (the
# command as one string, words with blanks shell-quoted), with the same checks for both backends;
# and defines show_failure, their one way of reporting failed jobs.

show_failure() {  # MESSAGE LOG: the message, then the last lines of LOG (the first failed job's)
  echo "$0: $1, log is in $2" >&2
  if [ -f "$2" ]; then
    echo "---- last lines of $2 ----" >&2
    tail -n 20 "$2" >&2
    echo "----" >&2
  fi
}

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
