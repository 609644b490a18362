#!/usr/bin/env bash
# Apply pending PostgreSQL migrations (the deploy does this too).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops db-migrate.sh playbooks/migrate.yml "Apply pending PostgreSQL migrations (the deploy does this too)."; exit 0 ;; esac
run_playbook playbooks/migrate.yml "db-migrate" "$@"
