"""kubemini's API server: the Kubernetes REST API over etcd."""
