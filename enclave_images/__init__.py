"""What runs in and next to the Nitro Enclave: the enclave application, the parent-side agent,
the model build, and the EIF build (see README.md in this folder)."""
