#!/bin/bash
# zero-trust-ai inference parent (components/enclave_fleet/): size the enclave allocator, check
# the EIF against the pinned measurements, start the enclave in production mode, start the agent.
set -euo pipefail
umask 077
mkdir -p /etc/nitro_enclaves /etc/zero-trust-ai
cat > /etc/nitro_enclaves/allocator.yaml <<'EOF'
---
memory_mib: @{enclave_memory_mib}
cpu_count: @{enclave_cpu_count}
EOF
chmod 0644 /etc/nitro_enclaves/allocator.yaml
systemctl enable nitro-enclaves-allocator.service nitro-enclaves-vsock-proxy.service
systemctl restart nitro-enclaves-allocator.service
systemctl start nitro-enclaves-vsock-proxy.service
eif=@{eif_path}
nitro-cli describe-eif --eif-path "$eif" > /run/zero-trust-ai-eif.json
python3 - /run/zero-trust-ai-eif.json <<'EOF'
import json, sys
expected = @{expected_measurements}
measured = json.load(open(sys.argv[1]))["Measurements"]
wrong = sorted(pcr for pcr, value in expected.items() if str(measured.get(pcr, "")).lower() != value)
if wrong:
    sys.exit("EIF measurements differ from the pinned ones: " + ", ".join(wrong))
EOF
nitro-cli run-enclave --eif-path "$eif" --cpu-count @{enclave_cpu_count} \
    --memory @{enclave_memory_mib} --enclave-cid @{enclave_cid}
cat > @{agent_environment_file} <<'EOF'
AWS_REGION=@{region}
AWS_DEFAULT_REGION=@{region}
ZTAI_AGENT_ARGS=@{agent_args}
EOF
systemctl enable --now @{agent_unit}
