# mastfs build, test and benchmark entry points.
GO       ?= go
BIN      ?= bin/mastfs
TIMEOUT  ?= 15m
PKGS     ?= ./...

.PHONY: all build test deps check bench install clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mastfs

install:
	$(GO) install ./cmd/mastfs

# deps installs what the integration tests need (fuse3, vsftpd, pure-ftpd,
# openssl, curl, python3-astropy) when it is missing, or says how to.
deps:
	@bash .ci/deps

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

check:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v staticcheck >/dev/null; then staticcheck ./...; fi

clean:
	rm -rf bin
