# kubemini developer entry points. `make up` and `make test` install what they need on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.kubemini
PORT ?= 6443

.PHONY: deps venv test unit integration e2e lint bench proto up down clean

deps:  ## Debian packages the tests and the cluster need (kubectl comes with the machine)
	@missing=""; \
	for pair in etcd:etcd-server etcdctl:etcd-client runc:runc busybox:busybox-static catatonit:catatonit \
	            ip:iproute2 docker-registry:docker-registry containerd:containerd \
	            host-local:containernetworking-plugins; do \
	  PATH="$$PATH:/usr/sbin:/sbin:/usr/lib/cni" command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: deps venv lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

unit: venv
	$(PY) -m pytest -q tests/unit

integration: deps venv
	$(PY) -m pytest -q tests/integration

e2e: deps venv
	$(PY) -m pytest -q tests/e2e

bench: deps venv
	$(PY) -m bench

proto:  ## regenerate the committed gRPC stubs (pinned grpcio-tools keeps the runtime floor low)
	@test -x .venv-proto/bin/python || { python3 -m venv .venv-proto && .venv-proto/bin/pip install -q 'grpcio-tools==1.66.2'; }
	.venv-proto/bin/python scripts/genproto.py

up: deps venv  ## etcd + API server in the background; prints how to use kubectl
	$(PY) -m kubemini up -d --data-dir $(DATA_DIR) --port $(PORT)

down: venv
	$(PY) -m kubemini down --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) .venv-proto build *.egg-info
