#!/usr/bin/env bash
# The last lines of one or all containers' logs; -f follows them live (local engine or DOCKER_HOST).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
usage: scripts/logs.sh [-f] [-n LINES] [ROLE ...] [-- ansible-playbook options]
  Prints the last LINES (default 50) of each ROLE's containers (all when none is named),
  replicas included. -f follows them live with docker logs (needs the engine here or DOCKER_HOST).
  examples: scripts/logs.sh chat gateway
            scripts/logs.sh -f -n 20 chat
            scripts/logs.sh -- -i inventories/remote
USAGE
}

follow="" lines=50 roles=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -f|--follow) follow=1 ;;
    -n|--lines) [ $# -ge 2 ] || die "-n needs a number of lines"; lines="$2"; shift ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) roles+=("$1") ;;
  esac
  shift
done
[[ "$lines" =~ ^[0-9]+$ ]] || die "-n takes a whole number of lines, not '$lines'"

if [ -n "$follow" ]; then
  command -v docker >/dev/null || die "docker is not installed here: -f needs the engine (or DOCKER_HOST)"
  filters=(--filter "label=com.whatsapp.stack=whatsapp")
  names=()
  if [ ${#roles[@]} -eq 0 ]; then
    mapfile -t names < <(docker ps "${filters[@]}" --format '{{.Names}}')
  else
    for role in "${roles[@]}"; do
      mapfile -t -O "${#names[@]}" names < <(docker ps "${filters[@]}" --filter "label=com.whatsapp.role=$role" --format '{{.Names}}')
    done
  fi
  [ ${#names[@]} -gt 0 ] || die "no running container of the stack matches: ${roles[*]:-all}"
  info "following ${names[*]} (Ctrl-C stops)"
  pids=()
  for name in "${names[@]}"; do
    docker logs -f --tail "$lines" "$name" 2>&1 | sed -u "s/^/${name#whatsapp-} | /" &
    pids+=($!)
  done
  trap 'kill "${pids[@]}" 2>/dev/null' INT TERM EXIT
  wait
  exit 0
fi

role_list="$(IFS=,; echo "${roles[*]:-}")"
run_playbook playbooks/logs.yml "logs" -e "logs_roles=$role_list" -e "logs_lines=$lines" "$@"
