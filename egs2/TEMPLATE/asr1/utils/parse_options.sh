# Option parser for recipe scripts. Source it after the option variables are set to their defaults:
#
#   stage=1          # defaults first ...
#   nbpe=150
#   . utils/parse_options.sh   # ... then '--stage 3 --nbpe=300' overwrite them
#
# Rules:
#   --name value and --name=value set the shell variable 'name' ('-' in the name is read as '_'),
#     but only a variable that the calling script already defined: anything else is an error, so a
#     misspelt option never passes silently. A caller that defines the array parse_options_names
#     accepts only the names it lists (its internal variables are then no options).
#   A variable whose default is true or false accepts only true or false.
#   --config FILE sources FILE (shell assignments such as 'nbpe=300') at that point of the line.
#   --help or -h prints the caller's usage and exits 0: the function 'usage' when the caller defines
#     one (it sees the values set by the options before --help), otherwise "$help_message".
#   Parsing stops at the first word that does not start with '--' or at a lone '--' (dropped); the
#     remaining words stay in "$@" for the caller.
#
# The helper variables all start with __po_ so that they never shadow an option.

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if declare -F usage >/dev/null 2>&1; then usage; else printf '%s\n' "${help_message:-}"; fi
      exit 0 ;;
    --)
      shift; break ;;
    --*=*)
      __po_name=${1%%=*}; __po_value=${1#*=}; shift ;;
    --*)
      if [ $# -lt 2 ]; then
        echo "$0: error: option $1 needs a value" >&2; exit 1
      fi
      __po_name=$1; __po_value=$2; shift 2 ;;
    *)
      break ;;
  esac
  __po_name=${__po_name#--}
  __po_name=${__po_name//-/_}
  if [ "$__po_name" = config ] && ! declare -p config >/dev/null 2>&1; then
    if [ ! -f "$__po_value" ]; then echo "$0: error: --config: no such file ($__po_value)" >&2; exit 1; fi
    # shellcheck disable=SC1090
    . "$__po_value"
    continue
  fi
  if ! [[ $__po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "$__po_name" >/dev/null 2>&1 ||
     { declare -p parse_options_names >/dev/null 2>&1 &&
       [[ " ${parse_options_names[*]} " != *" $__po_name "* ]]; }; then
    echo "$0: error: unknown option --$__po_name (see $0 --help)" >&2; exit 1
  fi
  case "${!__po_name}" in
    true|false)
      case "$__po_value" in
        true|false) ;;
        *) echo "$0: error: --$__po_name takes true or false, not '$__po_value'" >&2; exit 1 ;;
      esac ;;
  esac
  printf -v "$__po_name" '%s' "$__po_value"
done
unset __po_name __po_value
true
