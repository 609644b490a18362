#!/usr/bin/env bash
# The README's test command: bootstrap, prepare the Docker host, then every test layer
# (static, unit, molecule per role, end to end) in one pytest run ending with its summary.
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
# redis-server for the scheduler's leader-lock unit tests (a real Redis, no container),
# Debian's chromium and chromium-driver for the web client's browser test (nothing is
# downloaded by Selenium), and node for the syntax check of the client's JavaScript.
if ! { command -v psql && command -v redis-server && command -v chromium && command -v chromedriver \
       && command -v node; } >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  info "installing postgresql-client, redis-server, chromium, chromium-driver and node for the tests"
  # Only the program is wanted: a started Debian redis service would hold 127.0.0.1:6379,
  # the redis container's published port. policy-rc.d (exit 101) forbids starting it.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client redis-server \
    chromium chromium-driver $(command -v node >/dev/null || echo nodejs) >/dev/null
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

set +e
python -m pytest "$@" 2>&1
rc=$?
set -e
if [ "$rc" = 5 ]; then
  die "pytest collected no tests: that counts as a failure"
fi
exit "$rc"
