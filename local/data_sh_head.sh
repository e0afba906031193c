# The head of a paper-scale recipe's local/data.sh, sourced first thing: strict mode, $recipe (the
# recipe directory) and $repo, die and log, the defaults of the options every such recipe has, and
# the steps both recipes share:
#   parse_data_sh_options "$@"   after the recipe's own option defaults (at least stop_stage and
#                                mirrors), 'options' (the names of its further options) and 'usage'
#   common_options_help WIDTH    usage's first option lines: those of the options below
#   speaker_ids FILE WHAT        the SA speakers a list names
#   fetch_archive DIR NAME ...   download, verify, extract a corpus archive
#   write_sa_dirs                the per-speaker dirs from the SA pool (local/sa_dirs.py)
set -euo pipefail

recipe=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
repo=$(cd "$recipe/../../.." && pwd)

die() { echo "$0: error: $*" >&2; exit 2; }
log() { echo "[data.sh $(date +%H:%M:%S)] $*" >&2; }

stage=1
datadir=data
sa_partition=paper
n_adapt=0
n_dev=0
sa_split=$recipe/conf/sa_split.yaml
partition=$recipe/conf/sa_partition.tsv
checksums=$recipe/conf/sa_archives.txt
keep_archives=true

# common_options_help WIDTH: the --help lines of --stage, --stop_stage, --datadir, --sa_partition and
# --partition (each recipe's usage lists them first), the option column WIDTH wide.
common_options_help() {
  printf "  %-${1}s %s\n" "--stage N" "first stage ($stage)" "--stop_stage N" "last stage ($stop_stage)" \
    "--datadir DIR" "output directory ($datadir)" "--sa_partition RULE" "paper or ordered (see stage 2) ($sa_partition)" \
    "--partition FILE" "paper: the authors' partition (conf/sa_partition.tsv)"
}

# The options parsed by the recipe's utils/parse_options.sh (--name value, true/false checked,
# unknown names refused, --help prints usage) and those that go to local/sa_dirs.py checked, all
# before any work; then python (PYTHON, default python3) with the repository on PYTHONPATH.
parse_data_sh_options() {
  . "$recipe/db.sh"  # corpus location defaults, shown by --help
  # shellcheck disable=SC2206
  parse_options_names=(stage stop_stage datadir sa_partition partition n_adapt n_dev sa_split checksums mirrors
                       keep_archives $options)
  . "$recipe/utils/parse_options.sh"
  [ $# -eq 0 ] || die "unexpected argument '$1' (see --help)"
  [[ $sa_partition == paper || $sa_partition == ordered ]] || die "--sa_partition must be paper or ordered, got '$sa_partition'"
  for n in n_adapt n_dev; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "--$n must be a number, got '${!n}'"
  done
  if [[ $sa_partition == ordered && $n_adapt == 0 ]]; then die "--sa_partition ordered needs --n_adapt >= 1"; fi
  python=${PYTHON:-python3}
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
}

# speaker_ids FILE WHAT: the ids FILE lists ('#' comments dropped), on one line; none is an error.
speaker_ids() {
  local ids
  ids=$(sed 's/#.*//' "$1" | xargs) || exit  # an unreadable file: sed's message and status
  [ -n "$ids" ] || die "$1 lists no $2"
  echo "$ids"
}

# fetch_archive DIR NAME [args]: local/download.py fetches archive NAME of --checksums from the
# --mirrors into DIR, verifies and extracts it there, unless it is marked done or given as --existing.
fetch_archive() {
  local dir=$1 name=$2 m mirror_args=()
  shift 2
  for m in $mirrors; do mirror_args+=(--mirror "$m"); done
  "$python" "$repo/local/download.py" fetch --checksums "$checksums" --name "$name" \
    "${mirror_args[@]}" --download_dir "$dir" --extract_dir "$dir" --keep_archive "$keep_archives" "$@"
}

# write_sa_dirs: the per-speaker adapt/test dirs and speaker lists from $datadir/local/sa_pool.
write_sa_dirs() {
  "$python" "$repo/local/sa_dirs.py" --pool "$datadir/local/sa_pool" --datadir "$datadir" \
    --sa_partition "$sa_partition" --partition "$partition" --n_adapt "$n_adapt" --n_dev "$n_dev" \
    --sa_split "$sa_split"
}
