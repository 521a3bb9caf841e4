#!/bin/bash
# Self-test of docker-compose.yml: build the kubemini image without any registry, bring the whole cluster up,
# run a Deployment with the real kubectl, see its pods Running in the node containers, and tear it all down.
#
# Why this file exists: no container registry is reachable here, so "docker compose up" can only be proven with
# a base image we make ourselves (debootstrap of Debian bookworm, imported into the engine) and an engine we
# start ourselves. It is what tests/slow/test_compose_selftest.py runs; docs/compose.md explains the choices.
#
# Engine: Debian's dockerd 20.10 (docker.io) with an external containerd, --iptables=false --bridge=none, and
# deploy/runc-bounded as its default runtime (privileged containers ask for capabilities this host's bounding
# set lacks); compose: Debian's docker-compose 1.29, which honours depends_on conditions and health checks.
# Both daemons are ours: sockets and state under a temp dir, stopped at the end. Only the engine's image store
# persists ($KUBEMINI_SELFTEST_CACHE, default /var/cache/kubemini-selftest) so the base image is built once.
#
# Usage: deploy/selftest.sh [--rebuild-base] [--purge-cache]
#   --rebuild-base   debootstrap the base image again even if the cache has it
#   --purge-cache    remove the cached engine storage (base image included) and exit
# Exit status 0 only if every check passed; teardown runs whatever happened.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KUBEMINI_SELFTEST_CACHE:-/var/cache/kubemini-selftest}
SUITE=bookworm
MIRROR=${KUBEMINI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the node and etcd containers need beyond minbase (the Makefile's deps target, minus the host tools).
BASE_PACKAGES=python3,python3-venv,etcd-server,runc,catatonit,busybox-static,iproute2
BASE_TAG=$(echo "$SUITE $BASE_PACKAGES" | sha256sum | cut -c1-10)
BASE_IMAGE=kubemini-base:$SUITE-$BASE_TAG
IMAGE=kubemini:selftest
PROJECT=kmselftest$$
KUBECTL=${KUBECTL:-}
REBUILD_BASE=0
T0=$(date +%s.%N)

for arg in "$@"; do
  case "$arg" in
    --rebuild-base) REBUILD_BASE=1 ;;
    --purge-cache) rm -rf "$CACHE"; echo "removed $CACHE"; exit 0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1fs", b - a }'; }
step() { echo "[selftest $(elapsed)] $*"; }
fail() { echo "[selftest $(elapsed)] FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root: it starts dockerd and containerd and runs privileged node containers"

# --- prerequisites -------------------------------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
missing=""
for pair in dockerd:docker.io docker-compose:docker-compose containerd:containerd debootstrap:debootstrap \
            runc:runc; do
  command -v "${pair%%:*}" >/dev/null || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  step "installing$missing with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -z "$KUBECTL" ]; then
  for k in /usr/lib/google-cloud-sdk/bin/kubectl.1.32 "$(command -v kubectl || true)"; do
    [ -n "$k" ] && [ -x "$k" ] && { KUBECTL=$k; break; }
  done
fi
[ -n "$KUBECTL" ] || fail "no kubectl: put one on PATH or set KUBECTL=/path/to/kubectl"
DOCKER=/usr/bin/docker    # Debian's client matches Debian's dockerd (API 1.41)
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
PYTHON=$(command -v python3) || fail "python3 is needed on the host to build the wheelhouse"

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -n 9 || { step "another self-test holds $CACHE/lock; waiting"; flock 9; }

WORK=$(mktemp -d /tmp/kubemini-selftest.XXXXXX)
ENGINE=$WORK/engine
mkdir -p "$ENGINE" "$WORK/out" "$WORK/context"
export DOCKER_HOST=unix://$ENGINE/docker.sock
export COMPOSE_PROJECT_NAME=$PROJECT COMPOSE_FILE=$REPO/docker-compose.yml
export KUBEMINI_IMAGE=$IMAGE KUBEMINI_COMPOSE_DIR=$WORK/out
KUBECONFIG_FILE=$WORK/out/kubeconfig
CONTAINERD_PID="" DOCKERD_PID="" COMPOSE_UP=0 PASSED=0
# Empty cgroups dockerd creates (/sys/fs/cgroup/<controller>/docker): removed at the end unless they were here.
CGROUP_DOCKER_EXISTED=0; [ -d /sys/fs/cgroup/memory/docker ] && CGROUP_DOCKER_EXISTED=1
RUN_DOCKER_EXISTED=0; [ -d /run/docker ] && RUN_DOCKER_EXISTED=1   # dockerd makes /run/docker/plugins regardless
LINKS_BEFORE=$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)
our_mounts() { awk -v w="$WORK" -v c="$CACHE" 'index($5, w) == 1 || index($5, c) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
MOUNTS_BEFORE=$(our_mounts)   # e.g. a cache dir that is itself a mount point stays alone

stop_pid() {  # PID NAME: SIGTERM, wait up to 30 s, then SIGKILL
  local pid=$1 name=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  echo "  $name did not stop in 30 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

teardown() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [ "$PASSED" != 1 ] && [ "$COMPOSE_UP" = 1 ]; then
    echo "---- container states and last log lines (for the failure above) ----"
    docker-compose ps 2>&1
    docker-compose logs --no-color --tail 25 2>&1 | tail -250
  fi
  if [ "$COMPOSE_UP" = 1 ]; then
    # Everything stops gracefully (nodes drain their pods) except etcd: a 3-member etcd stopped as a whole
    # spends ~7 s on a leadership transfer nobody can take, and its volumes are deleted next anyway.
    step "teardown: compose stop (etcd killed), compose down -v"
    docker-compose stop -t 20 $(docker-compose config --services 2>/dev/null | grep -v '^etcd-') 2>&1 | grep -v ' \.\.\. ' | sed 's/^/  /'
    docker-compose logs --no-color node-1 node-2 2>&1 | grep -E 'pod\(s\) removed|stopped$' | sed 's/^/  /'
    docker-compose kill etcd-1 etcd-2 etcd-3 >/dev/null 2>&1
    docker-compose down -v --remove-orphans -t 20 2>&1 | grep -v ' \.\.\. ' | sed 's/^/  /'
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # keep the base image and this run's image (its dependency layer is the next build's cache); drop the rest
    "$DOCKER" image prune -f >/dev/null 2>&1
    "$DOCKER" container prune -f >/dev/null 2>&1
    "$DOCKER" network prune -f >/dev/null 2>&1
    "$DOCKER" volume prune -f >/dev/null 2>&1
  fi
  step "teardown: stopping dockerd and containerd"
  stop_pid "$DOCKERD_PID" dockerd
  stop_pid "$CONTAINERD_PID" containerd
  # whatever is still mounted under our dirs (nothing, normally) goes, deepest first
  for m in $(comm -13 <(echo "$MOUNTS_BEFORE" | sort) <(our_mounts | sort) | sort -r); do
    echo "  unmounting leftover $m"; umount -l "$m"
  done
  if [ "$CGROUP_DOCKER_EXISTED" = 0 ]; then
    for d in /sys/fs/cgroup/*/docker; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  fi
  [ "$RUN_DOCKER_EXISTED" = 0 ] && rmdir /run/docker/plugins /run/docker 2>/dev/null
  rm -rf "$WORK"
  # What we made on the host must be gone: links that appeared during the run, mounts, our daemons.
  # The kernel destroys a dead netns (and the veth ends in it) asynchronously, so give it a few seconds.
  local links_after new_links mounts tries=0
  while :; do
    links_after=$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)
    new_links=$(comm -13 <(echo "$LINKS_BEFORE") <(echo "$links_after") | grep -E '^(br-|veth|docker)' || true)
    [ -z "$new_links" ] || [ "$tries" -ge 50 ] && break
    tries=$((tries + 1)); sleep 0.2
  done
  mounts=$(comm -13 <(echo "$MOUNTS_BEFORE" | sort) <(our_mounts | sort) | grep -c . || true)
  local daemons=""
  for pid in $DOCKERD_PID $CONTAINERD_PID; do kill -0 "$pid" 2>/dev/null && daemons="$daemons $pid"; done
  if [ -n "$new_links" ] || [ "$mounts" != 0 ] || [ -d "$WORK" ] || [ -n "$daemons" ]; then
    echo "[selftest $(elapsed)] host NOT clean: links [$new_links], mounts $mounts, daemons still running [$daemons]" >&2
    [ "$status" = 0 ] && status=1
  else
    step "host clean: no bridge/veth left, no mount under $WORK or $CACHE, dockerd and containerd stopped, $WORK removed"
  fi
  if [ "$status" = 0 ]; then step "SELFTEST PASSED"; else echo "[selftest $(elapsed)] SELFTEST FAILED (status $status)" >&2; fi
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- engine ---------------------------------------------------------------------------------------------------
step "starting containerd and dockerd (state in $ENGINE, image store cached in $CACHE/docker)"
cat > "$ENGINE/containerd.toml" <<EOF
version = 2
root = "$ENGINE/containerd-root"
state = "$ENGINE/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ENGINE/containerd.sock"
[ttrpc]
  address = "$ENGINE/containerd.sock.ttrpc"
EOF
containerd --config "$ENGINE/containerd.toml" >"$ENGINE/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 100); do [ -S "$ENGINE/containerd.sock" ] && break; sleep 0.1; done
[ -S "$ENGINE/containerd.sock" ] || fail "containerd did not start: $(tail -5 "$ENGINE/containerd.log")"
dockerd --data-root "$CACHE/docker" --exec-root "$ENGINE/docker-exec" --pidfile "$ENGINE/dockerd.pid" \
  -H "$DOCKER_HOST" --containerd "$ENGINE/containerd.sock" \
  --iptables=false --ip-masq=false --bridge=none --oom-score-adjust=0 \
  --add-runtime "runc-bounded=$REPO/deploy/runc-bounded" --default-runtime runc-bounded \
  >"$ENGINE/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 300); do "$DOCKER" version >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
"$DOCKER" version >/dev/null 2>&1 || fail "dockerd did not start: $(tail -5 "$ENGINE/dockerd.log")"
step "engine up: dockerd $("$DOCKER" version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

# --- base image -----------------------------------------------------------------------------------------------
if [ "$REBUILD_BASE" = 0 ] && "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE: cached"
else
  step "base image $BASE_IMAGE: debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$WORK/rootfs" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || fail "debootstrap failed: $(tail -15 "$WORK/debootstrap.log")"
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  step "base image: importing $(du -sh "$WORK/rootfs" | cut -f1) root filesystem"
  tar -C "$WORK/rootfs" --numeric-owner -c . \
    | "$DOCKER" import --change 'CMD ["/bin/bash"]' --message "debootstrap $SUITE minbase + $BASE_PACKAGES" - "$BASE_IMAGE" >/dev/null
  rm -rf "$WORK/rootfs"
  # older base images (another package list) are of no further use
  for old in $("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' kubemini-base); do
    [ "$old" = "$BASE_IMAGE" ] || "$DOCKER" rmi "$old" >/dev/null 2>&1 || true
  done
fi
image_python=$("$DOCKER" run --rm --network none --entrypoint python3 "$BASE_IMAGE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$image_python" = "$host_python" ] \
  || fail "the host's python3 is $host_python but the image's is $image_python: binary wheels would not fit"

# --- kubemini image -------------------------------------------------------------------------------------------
mkdir -p "$WORK/src" "$WORK/context/wheels/kubemini"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then   # the working tree, minus ignored files
  (cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - -c) | tar -C "$WORK/src" -x
else
  tar -C "$REPO" --exclude=.venv --exclude=build --exclude='*.egg-info' -c . | tar -C "$WORK/src" -x
fi
"$PYTHON" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/pip" -q --disable-pip-version-check)
# The dependencies' wheels are cached per dependency list and python version (resolving them takes ~15 s).
deps_key=$("$PYTHON" -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], "rb")); print(sorted(d["project"]["dependencies"]), sys.version_info[:2])' \
  "$WORK/src/pyproject.toml" | sha256sum | cut -c1-12)
DEPS=$CACHE/wheels/$deps_key
if [ -d "$DEPS" ]; then
  step "wheelhouse: dependencies cached ($DEPS); building the kubemini wheel"
else
  step "wheelhouse: downloading kubemini's dependencies with pip (python $host_python) into $DEPS"
  rm -rf "$DEPS.tmp" "$CACHE"/wheels/*
  "${PIP[@]}" wheel --wheel-dir "$DEPS.tmp" "$WORK/src" >"$WORK/pip.log" 2>&1 \
    || fail "pip wheel failed: $(tail -15 "$WORK/pip.log")"
  rm -f "$DEPS.tmp"/kubemini-*.whl
  mv "$DEPS.tmp" "$DEPS"
fi
"${PIP[@]}" wheel --no-deps --wheel-dir "$WORK/context/wheels/kubemini" "$WORK/src" >"$WORK/pip.log" 2>&1 \
  || fail "pip wheel (kubemini) failed: $(tail -15 "$WORK/pip.log")"
cp -r "$DEPS" "$WORK/context/wheels/deps"
cp "$REPO/deploy/entrypoint.sh" "$WORK/context/"
step "building $IMAGE from deploy/Dockerfile on $BASE_IMAGE ($(ls "$WORK/context/wheels/deps" | wc -l) dependency wheels + kubemini, no network)"
DOCKER_BUILDKIT=0 "$DOCKER" build -q --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" \
  -f "$REPO/deploy/Dockerfile" "$WORK/context" >"$WORK/build.log" 2>&1 \
  || fail "docker build failed: $(tail -20 "$WORK/build.log")"
rm -rf "$WORK/src" "$WORK/venv" "$WORK/context"

# --- cluster --------------------------------------------------------------------------------------------------
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export KUBEMINI_API_PORT=$(free_port) KUBEMINI_API_PORT_2=$(free_port)
step "docker-compose up -d (project $PROJECT; API servers on 127.0.0.1:$KUBEMINI_API_PORT and :$KUBEMINI_API_PORT_2)"
COMPOSE_UP=1
t_up=$(date +%s.%N)
docker-compose up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "docker-compose up failed"; }
grep -v ' \.\.\. ' "$WORK/up.log" | sed 's/^/  /' || true   # (drop compose's per-container progress lines)

services=$(docker-compose config --services | grep -v '^kubeconfig$')
for _ in $(seq 120); do
  unhealthy=""
  for s in $services; do
    id=$(docker-compose ps -q "$s")
    h=$("$DOCKER" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null)
    [ "$h" = healthy ] || unhealthy="$unhealthy $s:$h"
  done
  [ -z "$unhealthy" ] && break
  sleep 1
done
[ -z "$unhealthy" ] || fail "services not healthy after 120 s:$unhealthy"
step "all $(echo "$services" | wc -w) services healthy, $(awk -v a="$t_up" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after compose up"
docker-compose ps 2>&1 | sed 's/^/  /'

[ -s "$KUBECONFIG_FILE" ] || fail "the kubeconfig service did not write $KUBECONFIG_FILE: $(docker-compose logs kubeconfig)"
export KUBECONFIG=$KUBECONFIG_FILE
step "kubectl ($KUBECTL) with the generated kubeconfig ($(grep server: "$KUBECONFIG_FILE" | tr -s ' '))"
for port in "$KUBEMINI_API_PORT" "$KUBEMINI_API_PORT_2"; do
  "$KUBECTL" --server "http://127.0.0.1:$port" get --raw /readyz >/dev/null || fail "API server on port $port is not ready"
done
step "both API servers answer /readyz"
"$KUBECTL" wait --for=condition=Ready node/node-1 node/node-2 --timeout=60s | sed 's/^/  /'
"$KUBECTL" get nodes -o wide | sed 's/^/  /'
"$KUBECTL" -n kube-system get leases | sed 's/^/  /'

step "applying deploy/samples/web.yaml (a Deployment of 2 busybox httpd pods with a readiness probe)"
"$KUBECTL" apply -f "$REPO/deploy/samples/web.yaml" | sed 's/^/  /'
"$KUBECTL" -n demo rollout status deployment/web --timeout=180s >"$WORK/rollout.log" 2>&1 \
  || { cat "$WORK/rollout.log"; "$KUBECTL" -n demo get pods -o wide; fail "deployment/web did not roll out"; }
sed 's/^/  /' "$WORK/rollout.log"
"$KUBECTL" -n demo get pods -o wide | sed 's/^/  /'
running=$("$KUBECTL" -n demo get pods -l app=web --field-selector=status.phase=Running -o name | wc -l)
[ "$running" = 2 ] || fail "expected 2 Running pods of deployment/web, found $running"

# apiserver-2 serves the same objects (it shares etcd; its watch cache has caught up)
"$KUBECTL" --server "http://127.0.0.1:$KUBEMINI_API_PORT_2" -n demo get deployment web -o wide | sed 's/^/  apiserver-2: /'

# The containers are real: busybox httpd processes inside the node containers, reachable through the kubelet.
for node in node-1 node-2; do
  n=$("$DOCKER" exec "$(docker-compose ps -q "$node")" busybox ps -o pid,args | grep -c '[h]ttpd -f' || true)
  step "$node container runs $n busybox httpd pod process(es)"
done
pod=$("$KUBECTL" -n demo get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
page=$("$KUBECTL" -n demo exec "$pod" -- wget -q -O - http://127.0.0.1/)
step "kubectl exec $pod -- wget http://127.0.0.1/ → \"$page\""
[[ "$page" == "hello from $pod" ]] || fail "unexpected page from $pod: $page"
"$KUBECTL" -n demo logs "$pod" --tail 2 | sed 's/^/  log: /'
PASSED=1
step "cluster checks passed; tearing down"
