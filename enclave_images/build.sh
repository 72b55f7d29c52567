#!/usr/bin/env bash
# Build the enclave image, convert it to an EIF, and pin its measurements in a stack.
#
#   enclave_images/build.sh STACK REGION [SIGNING_CERT SIGNING_KEY]
#
# Runs on a build host with docker and nitro-cli (the AMI pipeline's image has both). Writes
# build/digits.eif and build/measurements.json, then prints the `pulumi config set` commands that
# pin PCR0/1/2 (and PCR8 when signed); review them, run them, commit the stack file, and deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:?usage: build.sh STACK REGION [SIGNING_CERT SIGNING_KEY]}
region=${2:?usage: build.sh STACK REGION [SIGNING_CERT SIGNING_KEY]}
mkdir -p build
docker build --build-arg BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}" \
    -f enclave_images/Dockerfile -t zero-trust-ai-enclave:latest .
# AWS_REGION must be known inside the enclave (KMS host name): bake it in a thin layer.
printf 'FROM zero-trust-ai-enclave:latest\nENV AWS_REGION=%s\n' "$region" \
    | docker build -t "zero-trust-ai-enclave:$region" -
signing=()
if [ $# -ge 4 ]; then
    signing=(--signing-certificate "$3" --private-key "$4")
fi
nitro-cli build-enclave --docker-uri "zero-trust-ai-enclave:$region" --output-file build/digits.eif \
    "${signing[@]}" > build/measurements.json
python -m enclave_images.measurements build/measurements.json --stack "$stack" \
    ${signing:+--signed}
