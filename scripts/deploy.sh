#!/usr/bin/env bash
# Deploy the stack: bootstrap the pinned tool chain, then run site.yml.
# Any argument goes to ansible-playbook (-i inventories/airgapped, --tags redis, -e ...).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "${1:-}" in
  -h|--help)
    cat <<USAGE
usage: scripts/deploy.sh [ansible-playbook options]
  Bootstraps .venv (pinned Ansible), then runs: ansible-playbook site.yml [options]
  The default inventory is inventories/local (Docker Desktop, or this Debian host).
  Prints a line per role, what changed, failures and a table of the roles' times;
  -v prints Ansible's whole task stream.
  examples: scripts/deploy.sh -i inventories/airgapped
            scripts/deploy.sh --tags redis
USAGE
    exit 0 ;;
esac

start=$(now_s)
"$PROJECT_ROOT/scripts/bootstrap.sh"
info "ansible-playbook site.yml $*"
cd "$PROJECT_ROOT"
if ansible_playbook site.yml "$@"; then
  ok "deployed in $(elapsed "$start") s"
else
  die "deploy failed after $(elapsed "$start") s (see the failed task above)"
fi
