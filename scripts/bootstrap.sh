#!/usr/bin/env bash
# Create or update the pinned tool chain in .venv (idempotent; ~1 s when nothing changed).
# On a bare Debian/Ubuntu host running as root it first installs python3-venv with apt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "${1:-}" in
  -h|--help)
    echo "usage: scripts/bootstrap.sh   create/update .venv from requirements-dev.txt"; exit 0 ;;
esac

command -v python3 >/dev/null || die "python3 is missing: install Python 3.11 or newer"
python3 - <<'PY' || die "Python 3.11 or newer is needed (ansible-core 2.19)"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    info "installing python3-venv with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    die "python3's venv module is missing: install python3-venv"
  fi
fi

# The stamp is the hash of every requirements file plus the interpreter version.
stamp_want="$(cat "$PROJECT_ROOT/requirements-dev.txt" "$PROJECT_ROOT/services/requirements.txt" \
  <(python3 -VV) | sha256sum | cut -c1-16)"
stamp_file="$VENV/.bootstrap-stamp"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp_want" ]; then
  ok "toolchain current in $VENV"
  exit 0
fi

start=$(now_s)
info "installing the pinned tool chain into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip==26.3 >/dev/null
"$VENV/bin/python" -m pip install -q -r "$PROJECT_ROOT/requirements-dev.txt" 2>&1 \
  | grep -v -e '^WARNING: Location' || true
"$VENV/bin/python" -m pip check >/dev/null || die "pip check found broken requirements in $VENV"
echo "$stamp_want" >"$stamp_file"
ok "toolchain installed in $(elapsed "$start") s"
