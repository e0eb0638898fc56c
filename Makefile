# staple: see README.md. Every target is .PHONY: make decides nothing from timestamps here, go does.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/staple
FUZZTIME ?= 20s
# go test minimizes every new interesting input for up to 60 s by default, and fuzzes nothing meanwhile: with
# targets whose executions take milliseconds that was a whole campaign spent minimizing after its first seconds
FUZZMINIMIZE ?= 2s
# packages with fuzz targets are found by go test -list, so a new target runs without editing this file
FUZZPKGS  = $(shell $(GO) list ./...)

.PHONY: build run test race bench fuzz interop vet fmt clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# The embedded default: a lab CA, a localhost certificate and its responder, HTTPS on 127.0.0.1:8443.
run: build
	./$(BIN) serve

test: vet
	$(GO) test -race -count=1 ./...

race:
	$(GO) test -race -count=1 ./...

# The interop and bench files are vetted too (and so compiled), so that make test catches what would break them.
vet:
	$(GO) vet ./...
	$(GO) vet -tags 'interop bench' ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

# staple measured against nginx, Go's crypto/tls and openssl ocsp on this machine: writes BENCHMARKS.md and
# prints its tables (internal/bench/benchrun). It installs Debian's nginx (and, for the cgo builds, gcc and
# libssl-dev) when missing. BENCHTIME=quick for a short try, BENCHTIME=5s for longer runs, BENCH_ROUNDS=N;
# BENCH_BORING=0 and BENCH_OPENSSL=0 leave out the GOEXPERIMENT=boringcrypto and -tags openssl builds.
BENCH_BORING  ?= 1
BENCH_OPENSSL ?= 1
bench:
	@mkdir -p bin && date +%s > bin/.bench-started
	@set -e; need=""; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || need="$$need nginx"; \
	command -v openssl >/dev/null 2>&1 || need="$$need openssl"; \
	command -v taskset >/dev/null 2>&1 || need="$$need util-linux"; \
	if [ "$(BENCH_BORING)$(BENCH_OPENSSL)" != 00 ]; then command -v gcc >/dev/null 2>&1 || need="$$need gcc libc6-dev"; fi; \
	if [ "$(BENCH_OPENSSL)" != 0 ]; then test -f /usr/include/openssl/evp.h || need="$$need libssl-dev"; fi; \
	if [ -n "$$need" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "bench: installing$$need"; \
	  $$sudo apt-get install -y --no-install-recommends $$need || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$need; }; \
	fi
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .
	$(GO) build -trimpath -o bin/bench-staticserver ./internal/bench/staticserver
	$(GO) build -trimpath -o bin/benchrun ./internal/bench/benchrun
	@if [ "$(BENCH_BORING)" != 0 ]; then set -x; GOEXPERIMENT=boringcrypto CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/staple-boring .; fi
	@if [ "$(BENCH_OPENSSL)" != 0 ]; then set -x; CGO_ENABLED=1 $(GO) build -trimpath -tags openssl -ldflags '$(LDFLAGS)' -o bin/staple-openssl .; fi
	BENCHTIME='$(BENCHTIME)' BENCH_ROUNDS='$(BENCH_ROUNDS)' ./bin/benchrun -staple $(BIN) -static bin/bench-staticserver \
	  $$([ "$(BENCH_BORING)" = 0 ] || echo -staple-boring bin/staple-boring) \
	  $$([ "$(BENCH_OPENSSL)" = 0 ] || echo -staple-openssl bin/staple-openssl) -make-started $$(cat bin/.bench-started) -out BENCHMARKS.md

# Each fuzz target in turn for FUZZTIME (make fuzz FUZZTIME=5m for a longer campaign).
fuzz:
	@set -e; for pkg in $(FUZZPKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg; \
	  done; \
	done

# The suite in e2e/ against software nobody here wrote (nginx, HAProxy, gnutls-cli, curl, Node, Chromium),
# faults, load and crashes; .ci/run installs the peers. It ends with a table of every case, peer and result.
interop:
	@rm -f $(CURDIR)/bin/interop-summary.txt; mkdir -p bin
	STAPLE_SUMMARY=$(CURDIR)/bin/interop-summary.txt $(GO) test -count=1 -tags interop -run '^TestInterop' -timeout 40m ./e2e ; \
	  rc=$$?; cat $(CURDIR)/bin/interop-summary.txt 2>/dev/null; exit $$rc

clean:
	rm -rf bin
