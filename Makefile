# staple: see README.md. Every target is .PHONY: make decides nothing from timestamps here, go does.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/staple
FUZZTIME ?= 20s
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

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

# Each fuzz target in turn for FUZZTIME (make fuzz FUZZTIME=5m for a longer campaign).
fuzz:
	@set -e; for pkg in $(FUZZPKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The suite against software nobody here wrote (nginx, HAProxy, gnutls-cli, curl, Node, Chromium), faults,
# load and crashes; .ci/run installs the peers. It ends with a table of every case, peer and result.
interop:
	@rm -f $(CURDIR)/bin/interop-summary.txt; mkdir -p bin
	STAPLE_SUMMARY=$(CURDIR)/bin/interop-summary.txt $(GO) test -count=1 -tags interop -run '^TestInterop' -timeout 40m . ; \
	  rc=$$?; cat $(CURDIR)/bin/interop-summary.txt 2>/dev/null; exit $$rc

clean:
	rm -rf bin
