# Build tags keep cgo headers (gpgme, btrfs) out of the build; library users
# need the same tags: go build -tags "containers_image_openpgp exclude_graphdriver_btrfs".
TAGS    := containers_image_openpgp,exclude_graphdriver_btrfs
GO      ?= go
export GOFLAGS := -buildvcs=false -tags=$(TAGS)
BIN     := bin/bricklayer

.PHONY: all build test unit race vet fmt fmt-check demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/bricklayer

# test: everything, integration tests included (they skip with a message
# when skopeo, umoci, crane or docker-registry are missing).
test: vet fmt-check
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race -timeout 20m -run 'Concurren|Race|Parallel' . ./internal/...

unit:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# demo: build the CLI, make an image from testdata/demo into an OCI layout
# (demo/layout) and into an embedded store (demo/storage), and inspect it.
demo: build
	./scripts/demo.sh $(BIN)

# bench: Go benchmarks, then our CLI beside buildah on ../shared/bench
# workloads, and the plot of commit time against layer size; see
# BENCHMARKS.md. Arguments: make bench BENCH_STEPS="go sweep plot".
bench:
	./scripts/bench.sh $(BENCH_STEPS)

clean:
	rm -rf bin demo
