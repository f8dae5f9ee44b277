package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"mastfs/cmd/internal/human"
	"mastfs/cmd/internal/mountinfo"
	"mastfs/cmd/mastfs/internal/status"
	"mastfs/fs"
	"mastfs/ftps"
)

const statusExamples = `  mastfs status                  every mastfs mount of this machine
  mastfs status ~/stage          one mount
  mastfs status --json ~/stage   the same figures as JSON, for scripts
`

// errNotMastfs says a path is on no mastfs mount.
var errNotMastfs = errors.New("not on a mastfs mount")

func cmdStatus(args []string) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the figures as JSON")
	if err := parse(fset, args, statusExamples); err != nil {
		return err
	}
	if fset.NArg() > 1 {
		return usageError{"want at most one MOUNTPOINT (see mastfs status --help)"}
	}
	mounts, err := mountinfo.OfType(fuseType)
	if err != nil {
		return err
	}
	if fset.NArg() == 1 {
		m, err := findMount(mounts, fset.Arg(0))
		if err != nil {
			return err
		}
		r, err := mountStatus(m)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(os.Stdout, r)
		}
		printStatus(os.Stdout, r, time.Now())
		return nil
	}

	if len(mounts) == 0 && !*asJSON {
		fmt.Println("no mastfs mounts (mount one with: mastfs mount --remote-dir DIR MOUNTPOINT)")
		return nil
	}
	var reports []status.Report
	var failed []string
	for _, m := range mounts {
		r, err := mountStatus(m)
		switch {
		case errors.Is(err, status.ErrNotRegistered):
			// Another user's mount, on a shared machine: not ours to report.
			if !*asJSON {
				fmt.Printf("%s\n  (%s: mounted by another user, or by an older mastfs; no figures)\n\n", m.Point, m.Source)
			}
			continue
		case err != nil:
			failed = append(failed, m.Point)
			fmt.Fprintf(os.Stderr, "mastfs status: %v\n", err)
			continue
		}
		reports = append(reports, r)
		if !*asJSON {
			printStatus(os.Stdout, r, time.Now())
			fmt.Println()
		}
	}
	if *asJSON {
		if reports == nil {
			reports = []status.Report{}
		}
		if err := printJSON(os.Stdout, reports); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d mounts did not answer: %s", len(failed), len(mounts), strings.Join(failed, ", "))
	}
	return nil
}

// findMount returns the mastfs mount at or above path p.
func findMount(mounts []mountinfo.Mount, p string) (mountinfo.Mount, error) {
	abs, err := mountinfo.Resolve(p)
	if err != nil {
		return mountinfo.Mount{}, err
	}
	if m, ok := mountinfo.Holding(mounts, abs); ok {
		return m, nil
	}
	var points []string
	for _, m := range mounts {
		points = append(points, m.Point)
	}
	hint := "no mastfs mounts are here"
	if len(points) > 0 {
		hint = "mastfs mounts here: " + strings.Join(points, ", ")
	}
	return mountinfo.Mount{}, fmt.Errorf("%s: %w (%s)", abs, errNotMastfs, hint)
}

// mountStatus asks a mount for its figures over its control socket.
func mountStatus(m mountinfo.Mount) (status.Report, error) {
	r, err := status.Query(m.Point)
	if err != nil {
		return r, controlError(m, err)
	}
	return r, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printStatus writes a report for people.
func printStatus(w io.Writer, r status.Report, now time.Time) {
	c, p := r.Cache, r.Pool
	tls := r.TLS + " TLS"
	if r.TLS == ftps.Plaintext.String() {
		tls = "no TLS"
	}
	if p.TLSVersion != "" {
		tls += ", data " + p.TLSVersion
	}
	fmt.Fprintf(w, "%s\n", r.Mountpoint)
	fmt.Fprintf(w, "  server       %s@%s:%d, %s (%s)\n", r.User, r.Host, r.Port, r.RemoteDir, tls)
	pct := 0.0
	if c.Limit > 0 {
		pct = 100 * float64(c.Used) / float64(c.Limit)
	}
	fmt.Fprintf(w, "  cache        %s of %s used (%.1f%%), %d chunks, in %s\n",
		human.Bytes(c.Used), human.Bytes(c.Limit), pct, c.Chunks, r.CacheDir)
	if c.Hits+c.Misses == 0 {
		fmt.Fprintf(w, "  hit ratio    no reads yet\n")
	} else {
		fmt.Fprintf(w, "  hit ratio    %.1f%% (%d chunk reads from the cache, %d from the server)\n",
			100*c.HitRatio, c.Hits, c.Misses)
	}
	fmt.Fprintf(w, "  fetched      %s from the server\n", human.Bytes(c.BytesFetched))
	switch r.ReadPath {
	case fs.PathPassthrough:
		fmt.Fprintf(w, "  read path    passthrough: wholly cached files are read from local disk (%d opens)\n", r.PassthroughOpens)
	case "":
	default:
		fmt.Fprintf(w, "  read path    %s\n", r.ReadPath)
	}
	fmt.Fprintf(w, "  transfers    %d in flight\n", c.FetchesInFlight)
	fmt.Fprintf(w, "  connections  %d open (%d busy) of %d; %d retries, %d TLS fallbacks\n",
		p.Open, p.Busy, p.Limit, p.Retries, p.TLSFallbacks)
	fmt.Fprintf(w, "  process      pid %d, up %s\n", r.PID, human.Duration(now.Sub(r.Started)))
	if r.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics      http://%s/metrics\n", r.MetricsAddr)
	}
}

// fuseType is the file system type of a mastfs mount in the mount table.
const fuseType = "fuse.mastfs"
