# Doorstep. `make run` starts everything; `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Tools are pinned in tools/go.mod and run from there, in tools/go.work (the root go.work leaves them out).
TOOL := go -C tools tool
SERVICES := order supplier dispatch courier tracking gateway
GO_TEST_FLAGS ?= -race -timeout 15m

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: run
run: ## start the whole system with the seeded demo compound (Ctrl-C stops)
	@mkdir -p bin && go build -o bin/doorstep ./services/devstack/cmd/doorstep
	@exec bin/doorstep

.PHONY: demo
demo: ## simulate a lockdown day against the running system (make run in another terminal)
	@mkdir -p bin && go build -o bin/doorstep-demo ./services/devstack/cmd/doorstep-demo
	@exec bin/doorstep-demo $(DEMO_FLAGS)

.PHONY: token
token: ## print a 2-minute identity for grpcurl: make -s token ARGS='-role dispatcher'
	@mkdir -p bin && go build -o bin/doorstep-token ./services/devstack/cmd/doorstep-token
	@bin/doorstep-token $(ARGS)

.PHONY: deadletter
deadletter: ## list dead-lettered events, or replay one: make deadletter ARGS='replay 3'
	@mkdir -p bin && go build -o bin/doorstep-deadletter ./services/devstack/cmd/doorstep-deadletter
	@bin/doorstep-deadletter $(or $(ARGS),list)

.PHONY: test
test: check-generate lint-proto vet ## everything CI checks: generated-code drift, proto lint, vet, all tests of all modules
	@# CI keeps only the end of a long log: on failure the first data race report and the failing
	@# tests are printed again last, so a race's two sides are never cut off.
	@log=$$(mktemp) && trap 'rm -f $$log' EXIT && set -o pipefail && \
	echo "go test $(GO_TEST_FLAGS) work" && \
	go test $(GO_TEST_FLAGS) work 2>&1 | tee $$log || { \
		echo; echo "==== make test failed; repeated from above ===="; \
		awk '/^WARNING: DATA RACE/ { on = 1 } on && /^=+$$/ { exit } \
			on && /^[^ ]/ { print; n = 8; next } on && n-- > 0' $$log; \
		grep -E '^ *--- FAIL|^FAIL|^panic:' $$log; exit 1; }

.PHONY: bench
bench: ## benchmarks with their floors, side by side: planner (12k parcels), PlaceOrder vs pgx, outbox → tracking vs raw publish
	cd services/dispatch && go test -run '^$$' -bench PlanRound12k -benchmem -benchtime 5x ./internal/planner
	cd services/devstack && go run ./bench/placeorder
	cd services/devstack && go run ./bench/pipeline

.PHONY: fault-test
fault-test: ## event-pipeline fault suite with real processes (kill -9 NATS, a service, PostgreSQL)
	cd services/devstack && DOORSTEP_FAULT_TESTS=1 go test -count=1 -timeout 20m -v ./faulttest

.PHONY: generate
generate: ## regenerate Go code from proto/
	$(TOOL) buf generate ../proto --template ../proto/buf.gen.yaml -o ../proto

.PHONY: check-generate
check-generate: ## fail when regenerating would change proto/gen
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(TOOL) buf generate ../proto --template ../proto/buf.gen.yaml -o $$tmp && \
	if ! diff -r $$tmp/gen proto/gen >/dev/null; then \
		diff -r $$tmp/gen proto/gen | head -20; \
		echo "proto/gen is out of date: run 'make generate' and commit the result"; exit 1; \
	fi && echo "generated code is up to date"

.PHONY: lint-proto
lint-proto: ## buf lint (STANDARD)
	$(TOOL) buf lint ../proto

.PHONY: vet
vet: ## go vet every module and check formatting
	go vet work
	@unformatted=$$(gofmt -l proto pkg services); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

.PHONY: build
build: ## build every service binary the way the Dockerfile does (static, per module, GOWORK=off)
	@mkdir -p bin
	@for s in $(SERVICES); do \
		echo "build $${s}d"; \
		(cd services/$$s && CGO_ENABLED=0 GOWORK=off go build -trimpath -o ../../bin/$${s}d ./cmd/$${s}d) || exit 1; \
	done
	cd services/devstack && CGO_ENABLED=0 GOWORK=off go build -trimpath -o ../../bin/doorstep-seed ./cmd/doorstep-seed

.PHONY: deploy-check
deploy-check: build ## render docker-compose.yml and the Kubernetes manifests (needs docker-compose and kubectl)
	docker-compose -f docker-compose.yml config --quiet && echo "docker-compose.yml renders"
	kubectl kustomize deploy/k8s > /dev/null && echo "deploy/k8s renders"

.PHONY: grpcurl
grpcurl: ## run grpcurl, e.g. make grpcurl ARGS='-plaintext localhost:50051 list'
	$(TOOL) grpcurl $(ARGS)

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in pkg proto services/*; do (cd $$m && GOWORK=off go mod tidy) || exit 1; done

.PHONY: clean
clean: ## remove build output and the local data directory (.data: the demo database and NATS store)
	rm -rf bin .data
