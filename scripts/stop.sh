#!/usr/bin/env bash
# Stop the stack's containers, data kept (-e stop_roles=chat).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops stop.sh playbooks/stop.yml "Stop the stack's containers, data kept (-e stop_roles=chat)."; exit 0 ;; esac
run_playbook playbooks/stop.yml "stop" "$@"
