"""The enclave parent image's Image Builder component documents (the YAML files here) and the
code that reads and checks them (`documents`)."""
