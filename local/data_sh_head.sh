# The common head of a paper-scale recipe's local/data.sh, sourced (with the script's arguments)
# after its option defaults, 'options' (their names) and 'usage': die and log, the options parsed
# by the recipe's utils/parse_options.sh (--name value, true/false checked, unknown names refused),
# and the options that go to local/sa_dirs.py checked, all before any work.
die() { echo "$0: error: $*" >&2; exit 2; }
log() { echo "[data.sh $(date +%H:%M:%S)] $*" >&2; }

. "$recipe/db.sh"  # corpus location defaults, shown by --help
# shellcheck disable=SC2206
parse_options_names=($options)
. "$recipe/utils/parse_options.sh"
[ $# -eq 0 ] || die "unexpected argument '$1' (see --help)"
[[ $sa_partition == paper || $sa_partition == ordered ]] || die "--sa_partition must be paper or ordered, got '$sa_partition'"
for n in n_adapt n_dev; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "--$n must be a number, got '${!n}'"
done
if [[ $sa_partition == ordered && $n_adapt == 0 ]]; then die "--sa_partition ordered needs --n_adapt >= 1"; fi
