#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with the Fabric-made fixtures (blocks, envelopes, configs, config
# updates, certificates), so that every target starts from real, valid input and mutates from
# there. Safe to re-run: it only adds or overwrites the seed files it names; whatever libFuzzer
# added to the corpus stays.
#
# Usage: fuzz/seed.sh            (from anywhere)
# Environment:
#   ORDO_FIXTURES   the fabric-2.4 fixtures directory
#                   (default: ../shared/fixtures/fabric-2.4 beside the repository)
#   MAX_SEED_BYTES  skip seed files larger than this (default 65536). The 100-transaction blocks
#                   (~110 KB, ~250 KB as JSON) are left out by default: libFuzzer's default
#                   -max_len follows the largest seed, and huge inputs slow every execution.
#
# Plain copies are made with the shell. Seeds that live *inside* fixture files (the config
# envelope, config and signed config update inside a config block; the ConfigUpdate inside an
# update; creators inside envelopes; DER and SerializedIdentity forms of the certificates) are cut
# out by a small protobuf reader in python3; without python3 they are skipped with a warning.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixtures=${ORDO_FIXTURES:-$here/../../shared/fixtures/fabric-2.4}
max=${MAX_SEED_BYTES:-65536}
corpus=$here/corpus

if [[ ! -d $fixtures ]]; then
    echo "seed.sh: fixtures not found at $fixtures (set ORDO_FIXTURES)" >&2
    exit 1
fi
fixtures=$(cd "$fixtures" && pwd)

targets=(protolator_decode protolator_encode envelope_and_block msp_identity config_update)
for t in "${targets[@]}"; do
    mkdir -p "$corpus/$t"
done

copied=0
skipped=0

# put TARGET FILE [SELECTOR]: copy FILE into TARGET's corpus, named after its path inside the
# fixtures (slashes as underscores, so names never collide), with SELECTOR (a
# decimal byte) in front when given: protolator_decode picks the message type by the first byte.
put() {
    local target=$1 file=$2 selector=${3:-}
    local size
    size=$(stat -c %s "$file")
    if ((size > max)); then
        skipped=$((skipped + 1))
        return
    fi
    local name=${file#"$fixtures"/}
    name=${name//\//_}
    if [[ -n $selector ]]; then
        # printf with an octal escape writes the single raw byte.
        { printf "\\$(printf '%03o' "$selector")"; cat "$file"; } >"$corpus/$target/$selector-$name"
    else
        cp "$file" "$corpus/$target/$name"
    fi
    copied=$((copied + 1))
}

# protolator_decode selectors, as in fuzz_targets/protolator_decode.rs.
BLOCK=0 ENVELOPE=1 CONFIG=2 CONFIG_UPDATE=3 CONFIG_ENVELOPE=4

shopt -s nullglob
blocks=("$fixtures"/channel-genesis/*.block "$fixtures"/ledger/from-orderer1/*.pb "$fixtures"/ledger/from-orderer2/*.pb)
envelopes=("$fixtures"/envelopes/*.pb "$fixtures"/config-update/*.env.pb)
configs=("$fixtures"/config-update/*.orig.pb "$fixtures"/config-update/*.new.pb)
updates=("$fixtures"/config-update/*.upd.pb)
json=("$fixtures"/channel-genesis/*.json "$fixtures"/ledger/from-orderer1/*.json "$fixtures"/config-update/*.json)
for f in "$fixtures"/envelopes/*.json; do
    # The *.pb.response.json files are Broadcast answers, not messages.
    [[ $f == *.response.json ]] || json+=("$f")
done
certs=()
while IFS= read -r -d '' f; do
    certs+=("$f")
done < <(find "$fixtures/crypto-config" -type f \( -name '*-cert.pem' -o -name '*.crt' \) -print0 | sort -z)

for f in "${blocks[@]}"; do
    put protolator_decode "$f" $BLOCK
    put envelope_and_block "$f"
done
for f in "${envelopes[@]}"; do
    put protolator_decode "$f" $ENVELOPE
    put envelope_and_block "$f"
done
for f in "$fixtures"/config-update/*.env.pb; do
    put config_update "$f"
done
for f in "${configs[@]}"; do
    put protolator_decode "$f" $CONFIG
    put config_update "$f"
done
for f in "${updates[@]}"; do
    put protolator_decode "$f" $CONFIG_UPDATE
done
for f in "${json[@]}"; do
    put protolator_encode "$f"
done
# Certificates: the same cert sits in many MSP folders; keep one copy of each.
declare -A seen_cert=()
for f in "${certs[@]}"; do
    sum=$(sha256sum "$f" | cut -c1-16)
    [[ -n ${seen_cert[$sum]:-} ]] && continue
    seen_cert[$sum]=1
    put msp_identity "$f"
done

echo "seed.sh: copied $copied fixture files, skipped $skipped larger than $max bytes"

if ! command -v python3 >/dev/null; then
    echo "seed.sh: python3 not found; skipping the seeds cut out of fixture files" >&2
    exit 0
fi

python3 - "$fixtures" "$corpus" "$max" <<'PY'
"""Cuts seeds out of the fixtures with a minimal protobuf wire reader (no dependencies)."""
import base64
import hashlib
import os
import re
import sys

fixtures, corpus, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
BLOCK, ENVELOPE, CONFIG, CONFIG_UPDATE, CONFIG_ENVELOPE = range(5)
written = 0


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, value) for every field; length-delimited values as bytes."""
    i, out = 0, []
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, v))
    return out


def field(buf, num, default=b""):
    for n, v in fields(buf):
        if n == num:
            return v
    return default


def all_of(buf, num):
    return [v for n, v in fields(buf) if n == num]


def enc_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_bytes(num, data):
    return enc_varint(num << 3 | 2) + enc_varint(len(data)) + data


def put(target, name, data, selector=None):
    global written
    if selector is not None:
        data = bytes([selector]) + data
        name = f"{selector}-{name}"
    if not data or len(data) > limit:
        return
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)
    written += 1


def read(rel):
    with open(os.path.join(fixtures, rel), "rb") as f:
        return f.read()


# Config blocks: Block.data(2).data(1)[0] = Envelope; Envelope.payload(1) = Payload;
# Payload.data(2) = ConfigEnvelope{config(1), last_update(2)}.
config_blocks = ["channel-genesis/" + n for n in sorted(os.listdir(os.path.join(fixtures, "channel-genesis"))) if n.endswith(".block")]
config_blocks.append("ledger/from-orderer1/block_13.pb")
for rel in config_blocks:
    stem = rel.replace("/", "_")
    env = all_of(field(read(rel), 2), 1)[0]
    payload = field(env, 1)
    ce = field(payload, 2)
    config = field(ce, 1)
    update_env = field(ce, 2)
    put("protolator_decode", f"{stem}.config_envelope", ce, CONFIG_ENVELOPE)
    put("protolator_decode", f"{stem}.config", config, CONFIG)
    put("envelope_and_block", f"{stem}.envelope", env)
    put("config_update", f"{stem}.config", config)
    if update_env:
        # The signed CONFIG_UPDATE (block 13: adding orderer4, signed by the orderer admin).
        put("protolator_decode", f"{stem}.last_update", update_env, ENVELOPE)
        put("envelope_and_block", f"{stem}.last_update", update_env)
        put("config_update", f"{stem}.last_update", update_env)
        cue = field(field(update_env, 1), 2)
        put("protolator_decode", f"{stem}.config_update", field(cue, 1), CONFIG_UPDATE)

# Creators (SerializedIdentity) of the sample envelopes: Payload.header(1).signature_header(2).creator(1).
for name in sorted(os.listdir(os.path.join(fixtures, "envelopes"))):
    if name.endswith(".pb"):
        header = field(field(read("envelopes/" + name), 1), 1)
        creator = field(field(header, 2), 1)
        put("msp_identity", f"creator_{name}", creator)

# Certificates as DER, and the signing certificates as SerializedIdentity of their MSP.
msp_ids = {"example.com": "OrdererMSP", "org1.example.com": "Org1MSP", "org2.example.com": "Org2MSP"}
pem_re = re.compile(rb"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", re.S)
seen = set()
for root, _, files in sorted(os.walk(os.path.join(fixtures, "crypto-config"))):
    for name in sorted(files):
        if not (name.endswith("-cert.pem") or name.endswith(".crt")):
            continue
        path = os.path.join(root, name)
        with open(path, "rb") as f:
            pem = f.read()
        digest = hashlib.sha256(pem).hexdigest()[:16]
        if digest in seen:
            continue
        seen.add(digest)
        m = pem_re.search(pem)
        if m:
            put("msp_identity", f"der_{digest}_{name}", base64.b64decode(m.group(1)))
        parts = os.path.relpath(path, os.path.join(fixtures, "crypto-config")).split(os.sep)
        if "signcerts" in parts and parts[1] in msp_ids:
            sid = enc_bytes(1, msp_ids[parts[1]].encode()) + enc_bytes(2, pem)
            put("msp_identity", f"sid_{name}", sid)

print(f"seed.sh: wrote {written} seeds cut out of fixture files")
PY

for t in "${targets[@]}"; do
    printf '  %-20s %4d files\n' "$t" "$(find "$corpus/$t" -type f | wc -l)"
done
