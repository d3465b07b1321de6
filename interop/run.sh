#!/usr/bin/env bash
# Interop check with an independent client (Fabric's npm protos + @grpc/grpc-js):
#   1. installs interop/'s npm packages (npm ci) and checks the client's block/envelope code
#      against Fabric-made fixtures (verify-fixtures.js);
#   2. builds Ordo (cargo build -p ordo-cli; set ORDO_BIN to use another binary), starts one node
#      from an orderer.yaml derived from the fixtures' orderer1.yaml (ports from the kernel, read
#      from its start line; temp ledger/WAL), waits for /healthz, joins channel-1 (1 consenter: orderer1) through the channel participation
#      API with the orderer org admin's TLS client certificate;
#   3. runs client.js (broadcast, refusals, deliver, verification) and stops the node.
# Exit status = the client's (or non-zero if a step before it failed).
#   bash interop/run.sh            (from anywhere; needs node/npm, curl, cargo)
set -euo pipefail

INTEROP="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$INTEROP/.." && pwd)"
FIX="$(cd "$REPO/../shared/fixtures/fabric-2.4" && pwd)"
CHANNEL=channel-1
COUNT="${INTEROP_TX_COUNT:-250}"

echo "== interop: npm ci"
(cd "$INTEROP" && npm ci --no-audit --no-fund --loglevel=error)

echo "== interop: client checks against Fabric's own blocks and envelopes"
node "$INTEROP/verify-fixtures.js" "$FIX"

if [ -z "${ORDO_BIN:-}" ]; then
  echo "== interop: cargo build -p ordo-cli"
  (cd "$REPO" && cargo build -p ordo-cli)
  ORDO_BIN="$REPO/target/debug/ordo"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ordo-interop.XXXXXX")"
NODE_PID=""
cleanup() {
  local rc=$?
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/ordo.log" ]; then
    echo "== interop: FAILED (exit $rc); last 200 lines of the node's log ($WORK/ordo.log):"
    tail -n 200 "$WORK/ordo.log" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# orderer.yaml = the fixtures' orderer1.yaml with absolute crypto paths, temp storage, and every
# listener on a port the kernel chooses (admin and operations at 127.0.0.1:0; general and cluster
# by --kernel-ports, since Fabric reads ListenPort 0 as 7050). The node reports the ports it got
# on its start line: a port found free beforehand and bound later could be taken in between.
CONFIG="$WORK/orderer.yaml"
sed -e "s|crypto-config/|$FIX/crypto-config/|g" \
    -e "s|127.0.0.1:37251|127.0.0.1:0|" \
    -e "s|127.0.0.1:37351|127.0.0.1:0|" \
    -e "s|production/orderer1/|$WORK/production/|g" \
    "$FIX/config/orderer1.yaml" > "$CONFIG"
for want in "ListenAddress: 127.0.0.1:0" "{ListenAddress: 127.0.0.1:0," \
            "Location: $WORK/production/ledger" "WALDir: $WORK/production/etcdraft/wal"; do
  grep -qF "$want" "$CONFIG" || { echo "interop: derived orderer.yaml lacks '$want' (fixture orderer1.yaml changed?)" >&2; exit 1; }
done
if grep -nE '(: |\[)crypto-config/|production/orderer1' "$CONFIG"; then
  echo "interop: derived orderer.yaml still has a relative fixture path (lines above)" >&2
  exit 1
fi

echo "== interop: starting $ORDO_BIN node start --config $CONFIG --kernel-ports"
"$ORDO_BIN" node start --config "$CONFIG" --kernel-ports > "$WORK/ordo.log" 2>&1 &
NODE_PID=$!

# Its start line: `ordo node started: general=ADDR cluster=ADDR admin=ADDR operations=ADDR`
# (bounded, 60 s, failing early if the node exits).
started=""
for _ in $(seq 1 300); do
  started="$(sed -n 's/^ordo node started: //p' "$WORK/ordo.log" | head -n1)"
  [ -n "$started" ] && break
  kill -0 "$NODE_PID" 2>/dev/null || { echo "interop: the node exited before it reported its listeners" >&2; exit 1; }
  sleep 0.2
done
[ -n "$started" ] || { echo "interop: the node did not report its listeners within 60 s" >&2; exit 1; }
port_of() { printf '%s\n' "$started" | tr ' ' '\n' | sed -n "s/^$1=127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p"; }
PORT_GENERAL="$(port_of general)"; PORT_CLUSTER="$(port_of cluster)"
PORT_ADMIN="$(port_of admin)"; PORT_OPS="$(port_of operations)"
for p in "$PORT_GENERAL" "$PORT_CLUSTER" "$PORT_ADMIN" "$PORT_OPS"; do
  [ -n "$p" ] || { echo "interop: a listener missing from the start line: $started" >&2; exit 1; }
done
echo "== interop: node listening (general $PORT_GENERAL, cluster $PORT_CLUSTER, admin $PORT_ADMIN, operations $PORT_OPS)"

# Readiness: poll the operations endpoint, bounded (60 s), failing early if the node exits.
ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$NODE_PID" 2>/dev/null; then
    echo "interop: the node exited before /healthz answered" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT_OPS/healthz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "interop: GET http://127.0.0.1:$PORT_OPS/healthz did not answer 200 within 60 s" >&2; exit 1; }

ADMIN_CURL=(curl -sS --max-time 10
  --cacert "$FIX/crypto-config/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem"
  --cert "$FIX/crypto-config/ordererOrganizations/example.com/users/Admin@example.com/tls/client.crt"
  --key "$FIX/crypto-config/ordererOrganizations/example.com/users/Admin@example.com/tls/client.key")
ADMIN_URL="https://127.0.0.1:$PORT_ADMIN/participation/v1/channels"

echo "== interop: join $CHANNEL (POST $ADMIN_URL, multipart config-block)"
code=$("${ADMIN_CURL[@]}" -o "$WORK/join.json" -w '%{http_code}' \
  -F "config-block=@$FIX/channel-genesis/$CHANNEL.block;type=application/octet-stream" "$ADMIN_URL")
echo "HTTP $code $(tr -d '\n\t' < "$WORK/join.json")"
if [ "$code" != "201" ]; then
  echo "interop: join expected HTTP 201, got $code" >&2
  exit 1
fi

# The channel exists once its height is >= 1 (bounded, 30 s); client.js then retries its first
# Broadcast while the orderer answers SERVICE_UNAVAILABLE (no Raft leader yet).
height=0
for _ in $(seq 1 150); do
  body=$("${ADMIN_CURL[@]}" "$ADMIN_URL/$CHANNEL" 2>/dev/null || true)
  height=$(printf '%s' "$body" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).height||0)}catch(e){console.log(0)}})')
  [ "$height" -ge 1 ] && break
  sleep 0.2
done
[ "$height" -ge 1 ] || { echo "interop: GET $ADMIN_URL/$CHANNEL never showed height >= 1 (last body: $body)" >&2; exit 1; }
echo "GET $ADMIN_URL/$CHANNEL: $(printf '%s' "$body" | tr -d '\n\t')"

echo "== interop: client.js ($COUNT envelopes)"
set +e
node --no-deprecation "$INTEROP/client.js" --orderer "127.0.0.1:$PORT_GENERAL" --channel "$CHANNEL" --count "$COUNT" \
  --tls-ca "$FIX/crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/ca.crt" \
  --msp-dir "$FIX/crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp" --msp-id Org1MSP \
  --genesis "$FIX/channel-genesis/$CHANNEL.block" --timeout 60 --leader-wait 30
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
  echo "interop: 1 passed, 0 failed"
else
  echo "interop: 0 passed, 1 failed"
fi
exit "$rc"
