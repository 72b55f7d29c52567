"""Rules on EC2 launch templates and the enclave boot script."""
