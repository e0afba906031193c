# Environment of the espnet-p4q project; sourced by every recipe's path.sh.
#   - activates the virtual environment: $P4Q_VENV, else <repo>/venv (built by tools/install.sh)
#   - puts the repository on PYTHONPATH (python -m espnet_p4q.bin.* works without installing)
#   - OMP_NUM_THREADS defaults to 1 (torch's default thread count oversubscribes shared cores)
#   - LC_ALL=C (sort order of Kaldi-style tables), UTF-8 for Python I/O
P4Q_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
export P4Q_ROOT

_p4q_venv=${P4Q_VENV:-$P4Q_ROOT/venv}
if [ -f "$_p4q_venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$_p4q_venv/bin/activate"
else
  echo "path.sh: warning: no virtual environment at $_p4q_venv (run tools/install.sh)" >&2
fi
unset _p4q_venv

export PYTHONPATH="$P4Q_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
