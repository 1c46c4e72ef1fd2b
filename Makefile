# Build tags keep cgo headers (gpgme, btrfs) out of the build; library users
# need the same tags: go build -tags "containers_image_openpgp exclude_graphdriver_btrfs".
TAGS    := containers_image_openpgp,exclude_graphdriver_btrfs
GO      ?= go
export GOFLAGS := -buildvcs=false -tags=$(TAGS)
BIN     := bin/bricklayer

.PHONY: all build test unit vet fmt fmt-check fuzz demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/bricklayer

# test: everything, integration tests included (they skip with a message
# when skopeo, umoci, crane or docker-registry are missing). The timeouts
# are about five times what the slowest package takes on this project's
# 2-core machine (2 minutes, and 1.5 with -race), so that a deadlock fails
# with every goroutine's stack in minutes, not at go test's default of 30.
test: vet fmt-check
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -count=1 -race -timeout 10m -run 'Concurren|Race|Parallel|UploadsAhead|ToFileFollow|ToFilePublish|ReadsAhead|SourceFails|WriterFails|LayoutReuses|BlobCache|CommitLayerOptions|PushExportsBase|CloseAtEOF|ReadsSourceToItsEnd|SameAsContainersStorage|ChangedWhileRead|ChangesSince|WriteChanges|NormalizeAsTarnorm|OverlayDiff|RecordedDiff' . ./internal/...

# fuzz: run each fuzz target for FUZZTIME (make test runs their seeds only).
# The budget is a count of executions: a duration (10s) races the fuzzing
# coordinator's own deadline in Go 1.26 (go.dev/issue/75804, fixed in 1.27)
# and fails a target with a bare "context deadline exceeded" on a busy
# machine. The first run builds every dependency with coverage
# instrumentation, which takes minutes; later runs reuse the build cache. A
# failure leaves its input in the package's testdata/fuzz, where go test
# replays it from then on. Each input that finds new code is minimised
# first, for up to 60 s by default, with its executions left out of the
# count: FuzzLocalName's runs of 50000x took 11 s to 90 s. FUZZMINIMIZE
# bounds each minimisation by a count as well.
FUZZTIME ?= 50000x
FUZZMINIMIZE ?= 1000x
FUZZ_TARGETS := .:FuzzParseCompression \
	./docker:FuzzV2ImageRoundTrip ./docker:FuzzV2S2ManifestRoundTrip \
	./internal/copier:FuzzLookupOwner ./internal/dockerfile:FuzzParseChange \
	./cmd/bricklayer:FuzzLocalName ./cmd/bricklayer:FuzzTransportRef

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg; \
	done

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
