#!/usr/bin/env bash
# `make run`: `hubbub serve` for trying things on this machine. Usage: run.sh BIN_DIR SECRETS
#
# The server API key and the token secret are this checkout's: made once into SECRETS (mode
# 600, a shell file: `. SECRETS` in another shell sets them there too) and the same on every
# run; delete the file for new ones. HUBBUB_API_KEY / HUBBUB_TOKEN_HMAC_SECRET already set in
# the environment win over the file. Every other HUBBUB_* variable (HUBBUB_PORT=9000 ...)
# reaches hubbub serve as usual.
set -euo pipefail
bin=$1
secrets=$2

if [ ! -f "$secrets" ]; then
  mkdir -p "$(dirname "$secrets")"
  new() { "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
  (
    umask 077
    {
      echo "# make run's secrets for this checkout (made once; delete this file for new ones)"
      echo "export HUBBUB_API_KEY=$(new)"
      echo "export HUBBUB_TOKEN_HMAC_SECRET=$(new)"
    } >"$secrets.tmp"
  )
  mv "$secrets.tmp" "$secrets"
fi
api_key=${HUBBUB_API_KEY:-}
token_secret=${HUBBUB_TOKEN_HMAC_SECRET:-}
# shellcheck source=/dev/null
. "$secrets"
export HUBBUB_API_KEY=${api_key:-$HUBBUB_API_KEY}
export HUBBUB_TOKEN_HMAC_SECRET=${token_secret:-$HUBBUB_TOKEN_HMAC_SECRET}
export HUBBUB_ADMIN_INSECURE=true

host=${HUBBUB_HOST:-127.0.0.1}
port=${HUBBUB_PORT:-8765}
admin="http://$host:$port/admin"
[ "$port" = 0 ] && admin="/admin at the address below"
echo "this checkout's server API key and token secret (kept in $secrets; \`. $secrets\` sets them in another shell):"
echo "  export HUBBUB_API_KEY=$HUBBUB_API_KEY"
echo "  export HUBBUB_TOKEN_HMAC_SECRET=$HUBBUB_TOKEN_HMAC_SECRET"
echo "admin dashboard without a password, for this machine only (HUBBUB_ADMIN_INSECURE=true): $admin"
exec "$bin/hubbub" serve
