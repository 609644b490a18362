#!/usr/bin/env bash
# Remove the stack's containers and networks; volumes only with -e clean_volumes=true.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in -h|--help) usage_ops clean.sh playbooks/clean.yml "Remove the stack's containers and networks; volumes only with -e clean_volumes=true."; exit 0 ;; esac
run_playbook playbooks/clean.yml "clean" "$@"
