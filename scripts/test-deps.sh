#!/usr/bin/env bash
# The system programs the tests use, installed from Debian when missing:
#   redis   -> redis-server      (cluster, engine and interop tests)
#   postgres-> postgresql        (initdb/pg_ctl, in /usr/lib/postgresql/15/bin)
#   node    -> nodejs and npm    (hubbub.js, the tutorial's client, centrifuge-js)
#   chromium-> chromium          (browser tests; Playwright drives it, nothing is downloaded)
#   systemd -> systemd           (systemd-analyze verify of deploy/systemd/hubbub.service)
#   nginx   -> nginx             (the example reverse-proxy config, tests/e2e/test_nginx.py)
# Usage: test-deps.sh [redis] [postgres] [node] [chromium] [systemd] [nginx]   (no argument: all)
#
# Quiet when everything is there. Missing ones are installed with apt-get when running as
# root; otherwise it says what is missing and exits 0 (those tests skip), except under CI
# (CI=true), where anything missing is an error.
set -uo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(redis postgres node chromium systemd nginx)

have_postgres() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then return 0; fi
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
  done
  return 1
}

missing() {  # the Debian packages of what is missing
  local what
  for what in "${wanted[@]}"; do
    case $what in
      redis) command -v redis-server >/dev/null 2>&1 || echo redis-server ;;
      postgres) have_postgres || echo postgresql ;;
      node)
        command -v node >/dev/null 2>&1 || echo nodejs
        command -v npm >/dev/null 2>&1 || echo npm
        ;;
      chromium) [ -x /usr/bin/chromium ] || echo chromium ;;
      systemd) command -v systemd-analyze >/dev/null 2>&1 || echo systemd ;;
      nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || echo nginx ;;
      *) echo "test-deps: unknown prerequisite '$what'" >&2; exit 2 ;;
    esac
  done
}

pkgs=$(missing | tr '\n' ' ')
pkgs=${pkgs% }
if [ -n "$pkgs" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing $pkgs (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # one word per package
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; }; then
      echo "test-deps: apt-get install $pkgs failed" >&2
    fi
    pkgs=$(missing | tr '\n' ' ')
    pkgs=${pkgs% }
  fi
fi
if [ -n "$pkgs" ]; then
  msg="test-deps: missing $pkgs"
  if [ "$(id -u)" != 0 ]; then
    msg="$msg (not root, so not installed: sudo apt-get install $pkgs)"
  fi
  if [ "${CI:-}" = "true" ]; then
    echo "$msg; CI=true: the tests that need them would fail" >&2
    exit 1
  fi
  echo "$msg; the tests that need them will be skipped" >&2
fi

# Debian 12's nodejs is 18; the Node tests use --experimental-websocket (Node 20.10+).
case " ${wanted[*]} " in
  *" node "*)
    if command -v node >/dev/null 2>&1; then
      major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
      if [ "$major" -lt 20 ]; then
        msg="test-deps: node $(node --version) is older than 20; the Node tests need Node 20 or newer"
        if [ "${CI:-}" = "true" ]; then echo "$msg" >&2; exit 1; fi
        echo "$msg and will be skipped" >&2
      fi
    fi
    ;;
esac
exit 0
