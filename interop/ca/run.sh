#!/usr/bin/env bash
# Interop check of `ordo ca` with Fabric's npm CA client (fabric-ca-client 2.2.20):
#   1. installs interop/ca's npm packages (npm ci);
#   2. builds Ordo (cargo build -p ordo-cli; set ORDO_BIN to use another binary) and starts
#      `ordo ca start -b admin:adminpw` on a free loopback port with its home in a temp dir,
#      waiting for its "ordo ca started" line;
#   3. runs ca-client.js against it (trusting the `ca` root, which issues the server's TLS
#      certificate) and stops the server.
# Exit status = the client's (or non-zero if a step before it failed).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

echo "== interop/ca: npm ci"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${ORDO_BIN:-}" ]; then
  echo "== interop/ca: cargo build -p ordo-cli"
  (cd "$REPO" && cargo build -p ordo-cli)
  ORDO_BIN="$REPO/target/debug/ordo"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ordo-ca-interop.XXXXXX")"
CA_PID=""
cleanup() {
  local rc=$?
  if [ -n "$CA_PID" ] && kill -0 "$CA_PID" 2>/dev/null; then
    kill -TERM "$CA_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CA_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CA_PID" 2>/dev/null || true
    wait "$CA_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/ca.log" ]; then
    echo "== interop/ca: FAILED (exit $rc); last 100 lines of the server's log:"
    tail -n 100 "$WORK/ca.log" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/ca.yaml" <<YAML
port: 0
address: 127.0.0.1
home: home
csr:
  hosts: [localhost, 127.0.0.1]
YAML

echo "== interop/ca: ordo ca start"
"$ORDO_BIN" ca start --config "$WORK/ca.yaml" -b admin:adminpw >"$WORK/ca.log" 2>&1 &
CA_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(sed -n 's/^ordo ca started: \(https:\/\/[^ ]*\)$/\1/p' "$WORK/ca.log" | head -n1)"
  [ -n "$URL" ] && break
  kill -0 "$CA_PID" 2>/dev/null || { echo "ordo ca exited"; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "ordo ca did not start"; exit 1; }
# The TLS certificate names localhost.
URL="https://localhost:${URL##*:}"
echo "== interop/ca: fabric-ca-client against $URL"
node "$HERE/ca-client.js" --url "$URL" --tls "$WORK/home/ca/ca-cert.pem"
