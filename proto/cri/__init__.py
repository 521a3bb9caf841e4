"""Kubernetes CRI (runtime.v1) protobuf source and its generated gRPC stubs."""
