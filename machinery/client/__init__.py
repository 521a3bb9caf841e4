"""kubemini's Kubernetes client: configuration, resources, the REST client and list-then-watch.

Import from here: ``from machinery.client import ApiClient, load_config, PODS``.
"""

from machinery.client.config import ClientConfig, ConfigError, in_cluster_config, load_config, load_kubeconfig
from machinery.client.resources import (
    CONFIG_MAPS,
    CONTROLLER_REVISIONS,
    CRON_JOBS,
    DAEMON_SETS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    REPLICA_SETS,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFUL_SETS,
    Resource,
    resources_from_discovery,
)
from machinery.client.rest import ApiClient
from machinery.client.watch import Relisted, list_and_watch

__all__ = [
    "ApiClient", "ClientConfig", "ConfigError", "Relisted", "Resource", "in_cluster_config", "list_and_watch",
    "load_config", "load_kubeconfig", "resources_from_discovery",
    "CONFIG_MAPS", "CONTROLLER_REVISIONS", "CRON_JOBS", "DAEMON_SETS", "DEPLOYMENTS", "ENDPOINTS",
    "ENDPOINT_SLICES", "EVENTS", "JOBS", "LEASES", "NAMESPACES", "NODES", "PERSISTENT_VOLUME_CLAIMS",
    "PODS", "POD_DISRUPTION_BUDGETS", "REPLICA_SETS", "SECRETS", "SERVICES", "SERVICE_ACCOUNTS", "STATEFUL_SETS",
]
