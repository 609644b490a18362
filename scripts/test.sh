#!/usr/bin/env bash
# The README's test command: bootstrap, prepare the Docker host, then every test layer
# (molecule per role, end to end and reliability in turn; static and unit, and swarm, beside
# them), each pytest run ending with its summary.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -k redis).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "${1:-}" in
  -h|--help)
    echo "usage: scripts/test.sh [pytest args]   (default: every layer under tests/)"; exit 0 ;;
esac

inventory="${WHATSAPP_TEST_INVENTORY:-$PROJECT_ROOT/inventories/airgapped}"
export WHATSAPP_TEST_INVENTORY="$inventory"
cd "$PROJECT_ROOT"

t=$(now_s)
"$PROJECT_ROOT/scripts/bootstrap.sh"
t_boot=$(elapsed "$t")

# Programs the tests use from the host, besides the venv's: psql (postgresql-client),
# redis-server and PostgreSQL's server programs for the unit tests' throw-away stores (real
# servers, no container: tests/unit/services/real_backends.py),
# Debian's chromium and chromium-driver for the web client's browser test (nothing is
# downloaded by Selenium), node for the syntax check of the client's JavaScript, and npm to
# install newman (the Postman flow's runner, pinned by tests/newman/package-lock.json).
if ! { command -v psql && command -v redis-server && command -v chromium && command -v chromedriver \
       && command -v node && command -v npm && compgen -G '/usr/lib/postgresql/*/bin/initdb'; } >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  info "installing postgresql-client, postgresql, redis-server, chromium, chromium-driver, node and npm for the tests"
  # Only the programs are wanted: started Debian redis and postgresql services would hold
  # 127.0.0.1:6379 and :5432, the containers' published ports. policy-rc.d (exit 101)
  # forbids starting them.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client postgresql redis-server \
    chromium chromium-driver $(command -v node >/dev/null || echo nodejs) $(command -v npm >/dev/null || echo npm) >/dev/null
  if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# The engine, the networks and the base image, made once per run and reused by every layer.
t=$(now_s)
info "preparing the Docker host (docker_host role, inventory $inventory)"
mkdir -p .test-logs
if ! ansible-playbook -i "$inventory" playbooks/prepare_host.yml >.test-logs/prepare-host.log 2>&1; then
  tail -n 60 .test-logs/prepare-host.log
  die "preparing the Docker host failed (full log: .test-logs/prepare-host.log)"
fi
t_prep=$(elapsed "$t")

printf '\n%-22s %8s\n' "setup step" "seconds"
printf '%-22s %8s\n' "bootstrap .venv" "$t_boot" "prepare Docker host" "$t_prep"
echo

# With no arguments, every layer runs, in three pytest runs at once: the static and unit
# layers need no Docker engine; the Swarm layer runs its lab (three engines in containers,
# its own ports, network and config root) beside the roles layer, and deploys onto it once
# the roles layer has built every image (each image is built once per run); roles, e2e and
# reliability run in turn on this host's engine. Each run's whole output follows; all must pass.
run_pytest() {
  local rc=0
  python -m pytest "$@" 2>&1 || rc=$?
  if [ "$rc" = 5 ]; then
    echo "pytest collected no tests in: $*: that counts as a failure"
  fi
  return "$rc"
}

if [ "$#" -gt 0 ]; then
  set +e
  run_pytest "$@"
  rc=$?
  set -e
  exit "$rc"
fi

fast_log=.test-logs/static-and-unit.log
swarm_log=.test-logs/swarm-layer.log
images_built="$PROJECT_ROOT/.test-logs/images-built"
rm -f "$images_built"
set +e
( run_pytest tests/static tests/unit >"$fast_log" 2>&1 ) &
fast_pid=$!
( WHATSAPP_SWARM_AFTER="$images_built" run_pytest tests/swarm >"$swarm_log" 2>&1 ) &
swarm_pid=$!
WHATSAPP_IMAGES_BUILT="$images_built" run_pytest tests/roles tests/e2e tests/reliability
docker_rc=$?
# The Swarm layer never waits for a layer that has ended (without the images, it builds them).
touch "$images_built"
wait "$swarm_pid"
swarm_rc=$?
wait "$fast_pid"
fast_rc=$?
set -e
printf '\n===== swarm layer (run beside the roles layer; %s) =====\n' "$swarm_log"
cat "$swarm_log"
printf '\n===== static and unit layers (run beside the Docker layers; %s) =====\n' "$fast_log"
cat "$fast_log"
printf '\n%-34s %s\n' "pytest run" "exit code"
printf '%-34s %s\n' "roles, e2e, reliability" "$docker_rc" "swarm" "$swarm_rc" "static, unit" "$fast_rc"
if [ "$docker_rc" != 0 ] || [ "$swarm_rc" != 0 ] || [ "$fast_rc" != 0 ]; then
  exit 1
fi
