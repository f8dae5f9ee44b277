// Command delayproxy puts a long network path between FTPS clients and a
// server on loopback, for benchmarks: it listens on --listen at the control
// port and the whole passive range, forwards each port to the same port on
// --target, and delays and windows every byte. The server must announce the
// proxy's address in its passive replies (vsftpd: pasv_address).
//
//	delayproxy --listen 127.0.0.3 --target 127.0.0.1 --ports 2121,30000-30100 --delay 50ms --window 4MiB
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mastfs/ftps/ftpstest/netproxy"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("delayproxy failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, args []string) error {
	fl := flag.NewFlagSet("delayproxy", flag.ContinueOnError)
	listen := fl.String("listen", "127.0.0.3", "address to listen on")
	target := fl.String("target", "127.0.0.1", "address of the server")
	ports := fl.String("ports", "2121,30000-30100", "ports to forward one to one, control port first: list and ranges")
	delay := fl.Duration("delay", 50*time.Millisecond, "one-way delay in each direction")
	window := fl.String("window", "4MiB", "bytes in flight per connection and direction; 0 for none")
	rate := fl.String("rate", "0", "bytes per second over all connections; 0 for no cap")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fl.Args())
	}
	cfg := netproxy.Config{ListenHost: *listen, TargetHost: *target, Delay: *delay, Log: log}
	var err error
	if cfg.Ports, err = parsePorts(*ports); err != nil {
		return err
	}
	w, err := parseSize(*window)
	if err != nil {
		return fmt.Errorf("--window: %w", err)
	}
	cfg.Window = int(w)
	if cfg.Rate, err = parseSize(*rate); err != nil {
		return fmt.Errorf("--rate: %w", err)
	}

	p, err := netproxy.Start(cfg)
	if err != nil {
		return err
	}
	log.Info("delayproxy listening", "listen", cfg.ListenHost, "target", cfg.TargetHost,
		"ports", *ports, "delay", cfg.Delay, "window", cfg.Window, "rate", cfg.Rate)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	got := <-sig
	signal.Stop(sig)
	err = p.Close()
	st := p.Stats()
	log.Info("delayproxy stopped", "signal", got.String(), "accepted", st.Accepted,
		"refused", st.Refused, "to_server", st.ToServer, "to_client", st.ToClient)
	return err
}

// parsePorts reads "2121,30000-30100".
func parsePorts(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("port range %q runs backwards", part)
			}
		}
		for p := a; p <= b; p++ {
			out = append(out, p)
		}
	}
	return out, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

// parseSize reads a byte count with an optional unit: 4MiB, 512KiB, 1G, 10MB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
		{"B", 1},
	}
	t := strings.TrimSpace(s)
	scale := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, scale = strings.TrimSpace(rest), u.scale
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, errors.New("bad size " + strconv.Quote(s))
	}
	v := n * float64(scale)
	if v > 1<<62 {
		return 0, errors.New("size too large " + strconv.Quote(s))
	}
	return int64(v), nil
}
