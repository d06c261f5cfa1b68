#!/usr/bin/env bash
# Regenerates the Protobuf gencode of the Centrifugo client protocol:
#   src/hubbub/dialects/centrifuge/proto/client.proto -> client_pb2.py, client_pb2.pyi
#
# The generator is pinned (grpcio-tools below, which bundles protoc) and installed into a
# throwaway venv of its own, so the output is the same on every machine and every run. The
# gencode it writes needs a protobuf runtime at least as new as its protoc (libprotoc 35.1 ->
# protobuf 7.35.1): keep pyproject's `protobuf>=...` in step when bumping the pin.
#
# Usage: scripts/gen-proto.sh            (from anywhere; PROTOGEN_VENV overrides the venv path)
set -euo pipefail

GRPCIO_TOOLS_VERSION="1.85.1"
EXPECTED_PROTOC="libprotoc 35.1"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PROTOGEN_VENV:-${TMPDIR:-/tmp}/protogen-venv-grpcio-tools-${GRPCIO_TOOLS_VERSION}}"
python="${PYTHON:-python3}"

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('grpcio-tools') != '$GRPCIO_TOOLS_VERSION')" 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

protoc=("$venv/bin/python" -m grpc_tools.protoc)
got="$("${protoc[@]}" --version)"
if [[ "$got" != "$EXPECTED_PROTOC" ]]; then
    echo "gen-proto: grpcio-tools $GRPCIO_TOOLS_VERSION gave '$got', expected '$EXPECTED_PROTOC'" >&2
    exit 1
fi

cd "$root/src"
# The proto's path below src/ is its name in the descriptor pool: unique, so it never clashes
# with an SDK's own "client.proto" loaded in the same process.
"${protoc[@]}" -I. --python_out=. --pyi_out=. hubbub/dialects/centrifuge/proto/client.proto
echo "gen-proto: regenerated src/hubbub/dialects/centrifuge/proto/client_pb2.py{,i} ($got)"
