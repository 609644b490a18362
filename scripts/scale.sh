#!/usr/bin/env bash
# Scale the six services: add or remove replicas, re-render nginx's upstreams and
# Prometheus's targets (a rolling change: the other replicas keep serving).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
usage: scripts/scale.sh SERVICE=N [SERVICE=N] [ansible-playbook options]
  SERVICE is gateway, user, chat, message_processor, notification or scheduled_jobs;
  N is 1 to 32 replicas (the roles refuse more). Extra scheduled_jobs replicas are hot
  standbys: one runs the jobs, the others take over if it stops.
  Runs site.yml for those roles and the ones that follow them (nginx, prometheus) with
  -e <service>_replicas=N. To keep the count on later deploys, set <service>_replicas
  in the inventory.
  example: scripts/scale.sh chat=3 gateway=2 user=3
USAGE
}

case "${1:-}" in -h|--help|"") usage; [ -n "${1:-}" ]; exit $? ;; esac

extra=() tags=()
while [ $# -gt 0 ]; do
  case "$1" in
    gateway=*|user=*|chat=*|message_processor=*|notification=*|scheduled_jobs=*)
      service="${1%%=*}" count="${1#*=}"
      [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 32 ] \
        || die "$service: the number of replicas must be 1 to 32, not '$count'"
      extra+=(-e "${service}_replicas=$count"); tags+=("$service") ;;
    *=*) die "only the six services scale ('${1%%=*}' does not): see --help" ;;
    *) break ;;
  esac
  shift
done
[ ${#tags[@]} -gt 0 ] || die "name at least one SERVICE=N (see --help)"
tag_list="$(IFS=,; echo "${tags[*]},nginx,prometheus")"
run_playbook site.yml "scale ${tags[*]}" --tags "$tag_list" "${extra[@]}" "$@"
