#!/usr/bin/env bash
# Offline schema check of `ordo deploy kubernetes` (docs/kubernetes.md): no cluster is needed.
#   1. installs the PyPI package kubernetes-validate (pinned) when it is missing; it ships the
#      Kubernetes OpenAPI schemas of each release, so nothing is fetched while validating;
#   2. builds Ordo (cargo build -p ordo-cli; set ORDO_BIN to use another binary);
#   3. generates the manifests for placements 2/1/2 and 3/1/1 from the Fabric fixtures'
#      crypto-config (ORDO_CRYPTO_CONFIG to use another) and validates every file against the
#      schemas of Kubernetes 1.29 and 1.37, strictly (an unknown or misspelt field fails);
#   4. checks that the validator does fail on a manifest with a misspelt field, so that a
#      validator that passes everything cannot make this script pass.
# Run from anywhere; exit status 0 only if every manifest validated.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VALIDATOR_VERSION="1.37.0"
KUBERNETES_VERSIONS=(1.29.0 1.37.0)
CRYPTO="${ORDO_CRYPTO_CONFIG:-$REPO/../shared/fixtures/fabric-2.4/crypto-config}"

if ! command -v kubernetes-validate >/dev/null; then
  echo "== interop/k8s: pip install kubernetes-validate==$VALIDATOR_VERSION"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "kubernetes-validate==$VALIDATOR_VERSION"
fi
echo "== interop/k8s: $(kubernetes-validate --version 2>&1 | head -n 1)"

if [ -z "${ORDO_BIN:-}" ]; then
  echo "== interop/k8s: cargo build -p ordo-cli"
  (cd "$REPO" && cargo build -p ordo-cli)
  ORDO_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/ordo"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ordo-k8s-interop.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Validates every manifest of folder $1 against each Kubernetes version; fails on the first
# version with an error.
validate() {
  local dir="$1" v
  local files=("$dir"/*.yaml)
  for v in "${KUBERNETES_VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet --kubernetes-version "$v" "${files[@]}" || return 1
  done
}

for placement in 2/1/2 3/1/1; do
  out="$WORK/${placement//\//-}"
  echo "== interop/k8s: ordo deploy kubernetes --placement $placement"
  "$ORDO_BIN" deploy kubernetes --crypto-config "$CRYPTO" --placement "$placement" \
    --zones zone-a,zone-b,zone-c --image ordo:interop --out "$out"
  files=("$out"/*.yaml)
  sets=$(grep -l '^kind: StatefulSet$' "${files[@]}" | wc -l)
  budgets=$(grep -l '^kind: PodDisruptionBudget$' "${files[@]}" | wc -l)
  if [ "$sets" -ne 5 ] || [ "$budgets" -ne 1 ]; then
    echo "interop/k8s: FAILED: $placement gave $sets StatefulSets and $budgets budgets (expected 5 and 1)"
    exit 1
  fi
  echo "== interop/k8s: validating ${#files[@]} manifests against Kubernetes ${KUBERNETES_VERSIONS[*]} (strict)"
  if ! validate "$out"; then
    echo "interop/k8s: FAILED: the $placement manifests do not validate"
    exit 1
  fi
done

echo "== interop/k8s: the validator refuses a misspelt field"
broken="$WORK/broken"
mkdir "$broken"
cp "$WORK/2-1-2/50-poddisruptionbudget.yaml" "$broken/"
sed -i 's/maxUnavailable:/maxUnavaliable:/' "$broken/50-poddisruptionbudget.yaml"
if validate "$broken" >/dev/null 2>&1; then
  echo "interop/k8s: FAILED: kubernetes-validate accepted a misspelt field; the check above proves nothing"
  exit 1
fi

echo "interop/k8s: 2 passed, 0 failed"
