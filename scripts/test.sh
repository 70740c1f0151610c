#!/usr/bin/env bash
# Install everything the tests need, then run the whole default test suite
# (on 2 pytest-xdist workers; see below).
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow for soak runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [[ " ${need_apt[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null 2>&1 \
      && [ -d /run/systemd/system ]; then
    # Tests start their own turnserver on free ports; the package's system
    # service (enabled on install where systemd runs) must not hold 3478.
    $SUDO systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[embedded,test]'

# Node packages for the JS client, SDK and browser tests, and the fan-out
# benchmark's reference server and load generator (tests/e2e/test_fanout_runner.py).
# Installed again whenever the lock file changed since the last install.
for dir in tests/js clients/js-sdk loadtests/fanout; do
  if [ -f "$dir/package-lock.json" ] && ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock"; then
    (cd "$dir" && npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock)
  fi
done

.venv/bin/ruff check server tests loadtests
.venv/bin/mypy server

# Two pytest-xdist workers (the suite's tests wait on processes, sockets and
# timers more than they compute), each taking whole files; the Chromium tests
# and the -m slow runs stay on one worker (tests/support/scheduling.py).
# SKILLSHARE_TEST_WORKERS=0 (or -n 0 among the arguments) runs everything in
# one process. docs/testing.md.
WORKERS="${SKILLSHARE_TEST_WORKERS:-2}"
set +e
.venv/bin/python -m pytest -n "$WORKERS" --dist loadfile "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
