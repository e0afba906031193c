# Recipe environment: everything comes from the project's top-level path.sh (venv, PYTHONPATH,
# OMP_NUM_THREADS, LC_ALL). Recipes live at egs2/<corpus>/asr1, three levels below the root.
MAIN_ROOT=$PWD/../../..
# shellcheck disable=SC1091
. "$MAIN_ROOT/path.sh"
