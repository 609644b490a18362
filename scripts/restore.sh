#!/usr/bin/env bash
# Restore a backup made by backup.sh (-e backup_folder=backups/<UTC time>).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops restore.sh playbooks/restore.yml "Restore a backup made by backup.sh (-e backup_folder=backups/<UTC time>)."; exit 0 ;; esac
run_playbook playbooks/restore.yml "restore" "$@"
