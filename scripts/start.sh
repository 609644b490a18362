#!/usr/bin/env bash
# Start the stack's stopped containers in deploy order, each healthy before the next (-e start_roles=chat,gateway).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops start.sh playbooks/start.yml "Start the stack's stopped containers in deploy order, each healthy before the next (-e start_roles=chat,gateway)."; exit 0 ;; esac
run_playbook playbooks/start.yml "start" "$@"
