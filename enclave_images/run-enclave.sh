#!/bin/sh
# Inside the enclave: there is no network. KMS is reached through the parent's vsock-proxy
# (allowlisted to the region's KMS endpoint only): a local forwarder listens on 127.0.0.1:443 and
# relays to vsock CID 3 port 8000, and the KMS host name resolves to 127.0.0.1, so the TLS session
# runs end to end between boto3 in here and KMS (the parent relays ciphertext only).
set -eu
: "${AWS_REGION:?set AWS_REGION at build time (build.sh passes it)}"
ip link set dev lo up
echo "127.0.0.1 kms.${AWS_REGION}.amazonaws.com" >> /etc/hosts
cd /app
python -m enclave_images.enclave.forwarder --listen 127.0.0.1:443 --vsock 3:8000 &
# As root: the NSM attestation ioctl needs CAP_SYS_ADMIN (linux/nsm.h). The enclave is one
# process tree with no other tenant; its boundary is the enclave itself, not a Unix user.
exec python -m enclave_images.enclave.app --listen vsock:4294967295:5005
