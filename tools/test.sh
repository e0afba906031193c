#!/usr/bin/env bash
# Run the test suite: build or reuse the pinned environment (tools/install.sh), then pytest.
# Extra arguments go to pytest, e.g. tools/test.sh tests/quant -x
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in
  -h|--help) echo "Usage: $0 [pytest args...]   (builds/reuses the venv, then runs pytest on tests/)"; exit 0 ;;
esac
"$root/tools/install.sh"
cd "$root"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
exec "${P4Q_VENV:-$root/venv}/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
