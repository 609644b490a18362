#!/usr/bin/env bash
# Dump PostgreSQL and MongoDB into backups/<UTC time>/ on this machine (-e backup_root=DIR).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops backup.sh playbooks/backup.yml "Dump PostgreSQL and MongoDB into backups/<UTC time>/ on this machine (-e backup_root=DIR)."; exit 0 ;; esac
run_playbook playbooks/backup.yml "backup" "$@"
