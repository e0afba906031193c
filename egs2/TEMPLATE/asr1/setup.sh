#!/usr/bin/env bash
# Create a new recipe directory that uses the shared pipeline.
#
#   egs2/TEMPLATE/asr1/setup.sh egs2/<corpus>/asr1
#
# Makes the directory (it must not exist yet, and must lie two levels below egs2/ like every
# recipe), links p4q.sh, cmd.sh, path.sh, db.sh and utils/ to this TEMPLATE, and writes a run.sh
# skeleton plus empty conf/ and local/ for the corpus's own files.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && exit 0
  exit 2
fi
dir=$1
[ ! -e "$dir" ] || { echo "$0: $dir already exists" >&2; exit 1; }
template=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
mkdir -p "$dir/conf" "$dir/local"
dir=$(cd "$dir" && pwd)
[ "$(cd "$dir/../../TEMPLATE/asr1" 2>/dev/null && pwd -P)" = "$template" ] ||
  { rm -r "$dir"; echo "$0: $1 is not egs2/<corpus>/asr1 next to egs2/TEMPLATE" >&2; exit 1; }
for f in p4q.sh cmd.sh path.sh db.sh utils; do
  ln -s "../../TEMPLATE/asr1/$f" "$dir/$f"
done
cat > "$dir/run.sh" <<'EOF'
#!/usr/bin/env bash
# <corpus>: options of this corpus; the command line overrides them (./run.sh --help lists all).
set -euo pipefail

./p4q.sh \
  --local_data_opts "" \
  --nbpe 150 \
  --train_config conf/train.yaml \
  --inference_config conf/decode.yaml \
  "$@"
EOF
chmod +x "$dir/run.sh"
echo "created $dir: add local/data.sh, conf/train.yaml and conf/decode.yaml"
