# Shared helpers for the scripts in this folder (sourced, not run).
# Colour only when stdout is a terminal, so logs stay readable in CI.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  C_BOLD=$'\033[1m'; C_RED=$'\033[31m'; C_GREEN=$'\033[32m'; C_YELLOW=$'\033[33m'; C_OFF=$'\033[0m'
else
  C_BOLD=""; C_RED=""; C_GREEN=""; C_YELLOW=""; C_OFF=""
fi
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WHATSAPP_VENV:-$PROJECT_ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$PROJECT_ROOT/ansible.cfg"

# ansible_playbook: ansible-playbook with the scripts' output: progress lines, changes,
# messages, failures in full and a table of the roles' times (plugins/callback/progress.py);
# -v gives Ansible's whole stream, ANSIBLE_STDOUT_CALLBACK=default its usual output.
# (cryptography's deprecation notice about DSA, printed on every start, is left out.)
ansible_playbook() {
  ANSIBLE_STDOUT_CALLBACK="${ANSIBLE_STDOUT_CALLBACK:-progress}" \
    PYTHONWARNINGS="${PYTHONWARNINGS:-ignore:DSA is deprecated}" ansible-playbook "$@"
}

info() { printf '%s==>%s %s\n' "$C_BOLD" "$C_OFF" "$*"; }
ok() { printf '%s ok %s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
warn() { printf '%swarn%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
die() { printf '%sfail%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

# now_s: seconds since the epoch with decimals, for the timing tables.
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# run_playbook <playbook> <what it does> [ansible-playbook options...]
# The operations wrappers' common path: prerequisites (the venv, an inventory that exists),
# then the playbook with its own progress output, then one clear line and the exit code.
run_playbook() {
  local playbook="$1" what="$2"; shift 2
  local start; start=$(now_s)
  [ -x "$VENV/bin/ansible-playbook" ] || "$PROJECT_ROOT/scripts/bootstrap.sh"
  local prev="" arg
  for arg in "$@"; do
    if [ "$prev" = "-i" ] && [ ! -e "$arg" ] && [ ! -e "$PROJECT_ROOT/$arg" ]; then
      die "inventory '$arg' does not exist (try inventories/local or inventories/airgapped)"
    fi
    prev="$arg"
  done
  info "$what: ansible-playbook $playbook $*"
  cd "$PROJECT_ROOT"
  if ansible_playbook "$playbook" "$@"; then
    ok "$what: done in $(elapsed "$start") s"
  else
    local rc=$?
    die "$what: failed after $(elapsed "$start") s (exit $rc; see the failed task above)"
  fi
}

# usage_ops <script> <playbook> <text>: the --help of a wrapper.
usage_ops() {
  cat <<USAGE
usage: scripts/$1 [ansible-playbook options: -i inventories/<name>, -e var=value ...]
  $3
  Runs: ansible-playbook $2 (default inventory from ansible.cfg: inventories/local)
  Prints a line per role, what changed, failures and a table of the roles' times (-v: all).
USAGE
}
