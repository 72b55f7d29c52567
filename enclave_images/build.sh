#!/usr/bin/env bash
# Build the enclave image, convert it to an EIF, and pin its measurements in a stack.
#
#   pulumi stack output enclaveTrust --json --stack STACK > trust-input.json
#   BASE_IMAGE=python:3.11-slim@sha256:<digest> ENCLAVE_TRUST=trust-input.json [JWKS=jwks.json] \
#   enclave_images/build.sh STACK REGION KEY_ARN MODEL [SIGNING_CERT SIGNING_KEY]
#
# Runs on a build host with docker and nitro-cli. Writes build/enclave-config.json (the key ARN,
# region and model this image accepts) and build/enclave-trust.json (whom it serves: the token
# issuer's public keys, each client bound to its CAs, each route's scopes; from the stack's
# enclaveTrust output and the issuer's JWKS, fetched over HTTPS unless JWKS names a file), both
# baked into the image, so PCR2 covers them,
# build/digits.eif and build/measurements.json, then prints the `pulumi config set` commands that
# pin PCR0/1/2 (and PCR8 when signed). Review them, run them, commit the stack file, deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: BASE_IMAGE=image@sha256:... ENCLAVE_TRUST=file [JWKS=file] build.sh STACK REGION KEY_ARN MODEL [SIGNING_CERT SIGNING_KEY]"
stack=${1:?$usage}; region=${2:?$usage}; key_arn=${3:?$usage}; model=${4:?$usage}
base=${BASE_IMAGE:?$usage}
# Measurements are only worth pinning for a reproducible input: refuse a floating base image.
case "$base" in
    *@sha256:*) ;;
    *) echo "build.sh: BASE_IMAGE must be pinned by digest (image@sha256:...), got '$base'" >&2; exit 2 ;;
esac
# The image must know whom it serves: without the trust file the enclave would refuse to start.
trust_input=${ENCLAVE_TRUST:-}
if [ -z "$trust_input" ] || [ ! -r "$trust_input" ]; then
    echo "build.sh: ENCLAVE_TRUST must name a readable file: \`pulumi stack output enclaveTrust --json --stack $stack\`" >&2
    exit 2
fi
mkdir -p build
python3 - "$region" "$key_arn" "$model" > build/enclave-config.json <<'PY'
import json, sys
region, key_arn, model = sys.argv[1:4]
print(json.dumps({"region": region, "key_arns": [key_arn], "context": {"model": model}}, indent=2))
PY
# The issuer's signing keys: from the issuer itself over verified HTTPS (never through a host the
# enclave's parent controls), or a file the operator fetched the same way.
if [ -n "${JWKS:-}" ]; then
    cp "$JWKS" build/jwks.json
else
    issuer=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["issuer"])' "$trust_input")
    curl --fail --silent --show-error --proto '=https' --tlsv1.2 \
        "${issuer%/}/.well-known/jwks.json" > build/jwks.json
fi
python3 -m enclave_images.trust "$trust_input" build/jwks.json > build/enclave-trust.json
docker build --build-arg BASE_IMAGE="$base" -f enclave_images/Dockerfile -t zero-trust-ai-enclave:build .
# AWS_REGION must be known inside the enclave (the KMS host name): a thin layer on top.
printf 'FROM zero-trust-ai-enclave:build\nENV AWS_REGION=%s\n' "$region" \
    | docker build -t "zero-trust-ai-enclave:$region" -
signing=()
if [ $# -ge 6 ]; then
    signing=(--signing-certificate "$5" --private-key "$6")
fi
nitro-cli build-enclave --docker-uri "zero-trust-ai-enclave:$region" --output-file build/digits.eif \
    "${signing[@]}" > build/measurements.json
if [ ${#signing[@]} -gt 0 ]; then
    python3 -m enclave_images.measurements build/measurements.json --stack "$stack" --signed
else
    python3 -m enclave_images.measurements build/measurements.json --stack "$stack"
fi
