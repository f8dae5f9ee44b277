package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"mastfs/cmd/mastfs/internal/demo"
)

const demoExamples = `  mastfs demo                  mount the demo stage at ./mnt
  mastfs demo /tmp/stage       somewhere else
  mastfs demo --dir ~/mastfs-demo mnt   keep the stage and the cache between runs
`

func cmdDemo(args []string) error {
	var logs logFlags
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	logs.register(fset)
	// The terminal is for the instructions: only trouble is logged there.
	if f := fset.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
		_ = f.Value.Set("warn")
	}
	dir := fset.String("dir", "", "keep the generated stage, its certificate and the cache in `directory` (default: a temporary one, removed at exit)")
	largeSize := fset.String("large-size", "64MiB", "`size` of the stage's large file")
	if err := parse(fset, args, demoExamples); err != nil {
		return err
	}
	if fset.NArg() > 1 {
		return usageError{"want at most one MOUNTPOINT (see mastfs demo --help)"}
	}
	shownMP := "mnt"
	if fset.NArg() == 1 {
		shownMP = fset.Arg(0)
	}
	large, err := parseSize(*largeSize)
	if err != nil {
		return usageError{"--large-size: " + err.Error()}
	}
	log, closeLog, err := logs.logger()
	if err != nil {
		return err
	}
	defer closeLog.Close()

	mountpoint, err := filepath.Abs(shownMP)
	if err != nil {
		return err
	}
	if _, err := os.Stat(mountpoint); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(mountpoint, 0o755); err != nil {
			return fmt.Errorf("demo mount point: %w", err)
		}
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "mastfs-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	if work, err = filepath.Abs(work); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "mastfs demo: writing a MAST-like stage into %s ...\n", work)
	srv, err := demo.Start(work, large, log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer srv.Close()

	m := mountFlags{
		server: serverFlags{host: srv.Host, port: srv.Port, tlsMode: "explicit", user: "anonymous",
			email: "demo@mastfs.invalid", remoteDir: demo.RemoteDir, caFile: srv.CAFile, maxConns: 4,
			timeout: 30 * time.Second},
		logs:      logs,
		cacheDir:  filepath.Join(work, "cache"),
		cacheSize: "2GiB",
		dirTTL:    5 * time.Minute,
	}
	guide := srv.Guide(shownMP, os.Args[0])
	err = serve(&m, mountpoint, log, os.Stdin, func() { fmt.Print(guide) })
	if err == nil {
		fmt.Fprintf(os.Stderr, "mastfs demo: unmounted %s and stopped the server\n", shownMP)
	}
	return err
}
