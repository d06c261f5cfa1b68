#!/usr/bin/env bash
# Creates the Python 2.7 virtualenv that runs the Autobahn|Testsuite (wstest).
# autobahntestsuite is Python-2-only; see ../shared/autobahn/README.md for why it is set up so.
# Without a Python 2.7 interpreter it says so and exits 0 (the Autobahn tests then skip),
# except under CI (CI=true), where a missing interpreter is an error.
#
# A python2.7 on PATH may be a pyenv shim that fails when 2.7 is not the active version
# ("pyenv: python2.7: command not found"), so every candidate is run before it is used, and
# pyenv's installed 2.7 versions are looked up directly, active or not.
set -euo pipefail
venv=${1:-.venv-autobahn}
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$venv/bin/wstest" ] && "$venv/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
  exit 0
fi

is_py27() {  # runs, and is 2.7
  [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' \
    >/dev/null 2>&1
}

candidates=()
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root 2>/dev/null || true)
  # `pyenv versions --bare` lists installed versions whether or not they are active.
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^2\.7(\.[0-9]+)?$' | sort -t. -k3,3nr); do
    candidates+=("$root/versions/$v/bin/python2.7")
  done
fi
for dir in "${PYENV_ROOT:-}" "$HOME/.pyenv"; do
  [ -n "$dir" ] || continue
  for p in $(ls -d "$dir"/versions/2.7*/bin/python2.7 2>/dev/null | sort -r); do
    candidates+=("$p")
  done
done
if command -v python2.7 >/dev/null 2>&1; then
  candidates+=("$(command -v python2.7)")  # maybe a shim: is_py27 runs it to find out
fi
candidates+=(/usr/bin/python2.7 /usr/local/bin/python2.7)

py27=""
for c in "${candidates[@]}"; do
  if is_py27 "$c"; then py27=$c; break; fi
done
if [ -z "$py27" ]; then
  msg="autobahn-venv: no working Python 2.7 (looked at pyenv's 2.7 versions, ~/.pyenv/versions/2.7*, python2.7 on PATH); the Autobahn tests cannot run (install one with: pyenv install 2.7.18)"
  if [ "${CI:-}" = "true" ]; then echo "$msg" >&2; exit 1; fi
  echo "$msg; they will be skipped" >&2
  exit 0
fi

rm -rf "$venv"
.venv/bin/virtualenv --quiet -p "$py27" "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/autobahn-requirements-py27.txt"
"$venv/bin/pip" install --quiet --disable-pip-version-check "autobahntestsuite==25.10.1"
"$venv/bin/wstest" --help >/dev/null
echo "autobahn-venv: wstest ready in $venv (Python 2.7 from $py27)"
