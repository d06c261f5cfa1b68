#!/usr/bin/env bash
# Creates the Python 2.7 virtualenv that runs the Autobahn|Testsuite (wstest).
# autobahntestsuite is Python-2-only; see ../shared/autobahn/README.md for why it is set up so.
# Without a Python 2.7 interpreter it says so and exits 0 (the Autobahn tests then skip),
# except under CI (CI=true), where a missing interpreter is an error.
set -euo pipefail
venv=${1:-.venv-autobahn}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$venv/bin/wstest" ] && exit 0

py27=""
if command -v pyenv >/dev/null 2>&1 && [ -x "$(pyenv root)/versions/2.7.18/bin/python" ]; then
  py27="$(pyenv root)/versions/2.7.18/bin/python"
elif command -v python2.7 >/dev/null 2>&1; then
  py27=$(command -v python2.7)
fi
if [ -z "$py27" ]; then
  msg="autobahn-venv: no Python 2.7 found (pyenv 2.7.18 or python2.7); the Autobahn tests cannot run"
  if [ "${CI:-}" = "true" ]; then echo "$msg" >&2; exit 1; fi
  echo "$msg; they will be skipped" >&2
  exit 0
fi

rm -rf "$venv"
.venv/bin/virtualenv --quiet -p "$py27" "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/autobahn-requirements-py27.txt"
"$venv/bin/pip" install --quiet --disable-pip-version-check "autobahntestsuite==25.10.1"
"$venv/bin/wstest" --help >/dev/null
echo "autobahn-venv: wstest ready in $venv"
