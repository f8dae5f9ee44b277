# mastfs build, test and benchmark entry points.
GO       ?= go
BIN      ?= bin/mastfs
TIMEOUT  ?= 15m
PKGS     ?= ./...

.PHONY: all build cross test deps check bench bench-quick install clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mastfs

# cross builds mastfs for the other platforms it supports: macOS (with
# macFUSE; built, not yet tested there) and 64-bit ARM Linux.
CROSS ?= darwin/amd64 darwin/arm64 linux/arm64
cross:
	@set -e; for p in $(CROSS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "GOOS=$$os GOARCH=$$arch go build ./cmd/mastfs"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -o $(BIN)-$$os-$$arch ./cmd/mastfs; \
	done

install:
	$(GO) install ./cmd/mastfs

# demo mounts a generated MAST-like stage at ./mnt, served by an FTPS server
# inside mastfs: no account, no network. Ctrl-C unmounts.
.PHONY: demo
demo: build
	@mkdir -p mnt
	$(BIN) demo mnt

# deps installs what the integration tests need when it is missing, or
# says how to (.ci/deps): the Debian packages vsftpd, fuse3, openssl, curl,
# python3-astropy, python3-pyftpdlib and python3-openssl, and the libraries
# proftpd links (libhiredis0.14, libmemcached11, libmemcachedutil2,
# libpcre2-posix3, libsodium23); pure-ftpd and proftpd (proftpd-core,
# proftpd-mod-crypto) are unpacked from their .debs, not installed, since
# each conflicts with vsftpd.
deps:
	@bash .ci/deps

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

# stress runs the long reliability tests, left out of make test: 32
# readers for a minute through one mount (cmd/mastfs/stress_test.go).
.PHONY: stress
stress: deps
	$(GO) vet -tags stress ./...
	$(GO) test -tags stress -count=1 -timeout 30m -run '^TestLoad' -v ./cmd/mastfs/

check:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v staticcheck >/dev/null; then staticcheck ./...; fi

# bench compares mastfs with rclone mount and curl on one vsftpd, near and
# through a delay proxy; it takes tens of minutes (cmd/mastfs-bench/README.md).
# Results go to cmd/mastfs-bench/results/.
# bench-quick is the same with small files and 3 runs, for iteration.
bench: build
	@bash cmd/mastfs-bench/deps.sh
	MASTFS_BENCH=1 $(GO) test -count=1 -timeout 90m -run '^TestBench$$' -v ./cmd/mastfs-bench/

bench-quick: build
	@bash cmd/mastfs-bench/deps.sh
	MASTFS_BENCH=quick $(GO) test -count=1 -timeout 30m -run '^TestBench$$' -v ./cmd/mastfs-bench/

clean:
	rm -rf bin
