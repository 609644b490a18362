#!/usr/bin/env bash
# Table of every container's state and health and every service's /ready; non-zero exit when anything is down.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops health-check.sh playbooks/health_check.yml "Table of every container's state and health and every service's /ready; non-zero exit when anything is down."; exit 0 ;; esac
run_playbook playbooks/health_check.yml "health-check" "$@"
