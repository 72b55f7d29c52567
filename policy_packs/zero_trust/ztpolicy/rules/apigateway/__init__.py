"""Rules on API Gateway: endpoints, mutual TLS, routes, stages, and the path to the enclave fleet."""
