#!/usr/bin/env bash
# Build the environment (tools/install.sh) and run the default recipe, egs2/synth_sa/asr1, end to end.
#
#   ./run.sh [--install true|false] [recipe options...]
#
# Every option except --install goes to egs2/synth_sa/asr1/run.sh (and from there to p4q.sh),
# e.g. ./run.sh --stage 9 --stop_stage 10. --help shows them all.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
recipe=$root/egs2/synth_sa/asr1

install=true
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --install)
      [ $# -ge 2 ] || { echo "$0: error: option --install needs a value (true or false)" >&2; exit 2; }
      install=$2; shift 2 ;;
    --install=*) install=${1#*=}; shift ;;
    -h|--help)
      sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      echo "  --install true|false   run tools/install.sh first (default: true; it is idempotent)"
      echo
      echo "Options of the recipe (egs2/synth_sa/asr1/run.sh):"
      cd "$recipe" && exec ./run.sh --help ;;
    *) args+=("$1"); shift ;;
  esac
done
case $install in true|false) ;; *) echo "$0: error: --install takes true or false, not '$install'" >&2; exit 2 ;; esac
# The recipe's option values are checked before anything is installed or run.
if [ -x "$recipe/p4q.sh" ]; then
  (cd "$recipe" && ./run.sh "${args[@]}" --check_only true)
fi

if [ "$install" = true ]; then
  "$root/tools/install.sh"
fi
cd "$recipe"
exec ./run.sh "${args[@]}"
