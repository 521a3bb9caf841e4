#!/bin/bash
# Entry point of the kubemini image: one role per container, configured by environment variables.
#
# Why this file exists: docker-compose.yml runs the same image as etcd, API server, controller-manager,
# scheduler and worker node; this script turns a role name plus a few variables into the component's
# command line (mirroring kubemini/process.py, which launches the same modules on one host), writes the
# in-container kubeconfig, and for a node supervises the CRI runtime and the kubelet together and drains
# every pod on the way down so nothing outlives the container.
#
#   etcd                 etcd itself, configured by etcd's own ETCD_* variables
#   apiserver            ETCD_SERVERS (comma-separated URLs), API_PORT (default 6443)
#   controller-manager   KUBEMINI_SERVER (API URL), HEALTH_PORT (default 10257)
#   scheduler            KUBEMINI_SERVER, HEALTH_PORT (default 10259)
#   node                 KUBEMINI_SERVER, NODE_NAME, POD_CIDR
#   kubeconfig           KUBECONFIG_OUT (file to write), KUBECONFIG_SERVER (URL the host uses)
#   health ROLE          the container's health check for ROLE (exit 0 = healthy)
set -euo pipefail

STATE=/var/lib/kubemini          # a volume: overlayfs for pod root filesystems cannot sit on overlayfs
RUNTIME_SOCKET=$STATE/runtime/cri.sock
RUNTIME_METRICS_PORT=10249
KUBELET_PORT=10250
CLIENT_KUBECONFIG=/run/kubemini/kubeconfig

log() { echo "[entrypoint $(date -u +%H:%M:%S)] $*" >&2; }

write_kubeconfig() {  # PATH SERVER: the same shape kubemini.apiserverproc.write_kubeconfig writes
  mkdir -p "$(dirname "$1")"
  cat > "$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: kubemini
  cluster:
    server: $2
users:
- name: kubemini
  user:
    token: kubemini
contexts:
- name: kubemini
  context:
    cluster: kubemini
    user: kubemini
current-context: kubemini
KUBECONFIG
}

get() { busybox wget -q -O /dev/null "$1" 2>/dev/null; }

health() {
  case "$1" in
    etcd) busybox wget -q -O - http://127.0.0.1:2379/health | grep -q '"health":"true"' ;;
    apiserver) get "http://127.0.0.1:${API_PORT:-6443}/readyz" && get "http://127.0.0.1:${API_PORT:-6443}/healthz" ;;
    controller-manager) get "http://127.0.0.1:${HEALTH_PORT:-10257}/healthz" ;;
    scheduler) get "http://127.0.0.1:${HEALTH_PORT:-10259}/healthz" ;;
    node) get "http://127.0.0.1:$RUNTIME_METRICS_PORT/healthz" && get "http://127.0.0.1:$KUBELET_PORT/healthz" ;;
    *) echo "no health check for role $1" >&2; return 2 ;;
  esac
}

run_node() {
  : "${NODE_NAME:?}" "${POD_CIDR:?}" "${KUBEMINI_SERVER:?}"
  write_kubeconfig "$CLIENT_KUBECONFIG" "$KUBEMINI_SERVER"
  mkdir -p "$STATE/runtime" "$STATE/kubelet" "$STATE/pods"
  # Docker mounts the cgroup hierarchies read-only unless privileged; say so instead of failing obscurely.
  mkdir /sys/fs/cgroup/memory/kubemini-probe 2>/dev/null && rmdir /sys/fs/cgroup/memory/kubemini-probe \
    || { log "/sys/fs/cgroup is not writable: the node container must be privileged"; exit 1; }

  log "node $NODE_NAME: starting the CRI runtime (pod CIDR $POD_CIDR)"
  python -m kubelet.runtime --listen "unix://$RUNTIME_SOCKET" --root "$STATE/runtime" --pod-cidr "$POD_CIDR" \
    --bridge kubemini0 --metrics-port "$RUNTIME_METRICS_PORT" &
  runtime_pid=$!
  for _ in $(seq 300); do get "http://127.0.0.1:$RUNTIME_METRICS_PORT/healthz" && break; sleep 0.1; done

  log "node $NODE_NAME: starting the kubelet against $KUBEMINI_SERVER"
  python -m kubelet --kubeconfig "$CLIENT_KUBECONFIG" --node-name "$NODE_NAME" \
    --container-runtime-endpoint "unix://$RUNTIME_SOCKET" --root-dir "$STATE/kubelet" \
    --pod-logs-dir "$STATE/pods" --pod-cidr "$POD_CIDR" --port "$KUBELET_PORT" --address 0.0.0.0 &
  kubelet_pid=$!

  stop_node() {
    trap - TERM INT
    log "node $NODE_NAME: stopping the kubelet, removing every pod, stopping the runtime"
    kill -TERM "$kubelet_pid" 2>/dev/null || true
    wait "$kubelet_pid" 2>/dev/null || true
    python -c 'import sys; from kubemini.node import drain_runtime; print(drain_runtime(sys.argv[1]), "pod(s) removed")' \
      "unix://$RUNTIME_SOCKET" || true
    kill -TERM "$runtime_pid" 2>/dev/null || true
    wait "$runtime_pid" 2>/dev/null || true
    ip link del kubemini0 2>/dev/null || true
    log "node $NODE_NAME: stopped"
    exit 0
  }
  trap stop_node TERM INT
  # Either process ending ends the node (compose's restart policy or a human decides what next).
  set +e
  wait -n "$runtime_pid" "$kubelet_pid"
  status=$?
  log "node $NODE_NAME: a component exited with status $status"
  stop_node
}

role=${1:-}
shift || true
case "$role" in
  etcd)
    exec etcd "$@" ;;
  apiserver)
    : "${ETCD_SERVERS:?}"
    exec python -m apiserver --etcd-servers "$ETCD_SERVERS" --bind-address 0.0.0.0 --port "${API_PORT:-6443}" "$@" ;;
  controller-manager)
    : "${KUBEMINI_SERVER:?}"
    write_kubeconfig "$CLIENT_KUBECONFIG" "$KUBEMINI_SERVER"
    exec python -m controllers --kubeconfig "$CLIENT_KUBECONFIG" --leader-elect --port "${HEALTH_PORT:-10257}" "$@" ;;
  scheduler)
    : "${KUBEMINI_SERVER:?}"
    write_kubeconfig "$CLIENT_KUBECONFIG" "$KUBEMINI_SERVER"
    exec python -m scheduler --kubeconfig "$CLIENT_KUBECONFIG" --leader-elect --port "${HEALTH_PORT:-10259}" "$@" ;;
  node)
    run_node ;;
  kubeconfig)
    : "${KUBECONFIG_OUT:?}" "${KUBECONFIG_SERVER:?}"
    write_kubeconfig "$KUBECONFIG_OUT" "$KUBECONFIG_SERVER"
    log "wrote $KUBECONFIG_OUT (server $KUBECONFIG_SERVER)" ;;
  health)
    health "${1:?health needs a role}" ;;
  *)
    echo "usage: entrypoint.sh etcd|apiserver|controller-manager|scheduler|node|kubeconfig|health ROLE" >&2
    exit 2 ;;
esac
