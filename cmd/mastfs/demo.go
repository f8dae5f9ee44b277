package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"mastfs/ftps/ftpsd"
	"mastfs/ftps/stagegen"
)

const demoExamples = `  mastfs demo                  mount the demo stage at ./mnt
  mastfs demo /tmp/stage       somewhere else
  mastfs demo --dir ~/mastfs-demo mnt   keep the stage and the cache between runs
`

// demoRemoteDir is the stage directory the demo mounts, as MAST's staging
// e-mail would name it.
const demoRemoteDir = "/" + stagegen.AnonDir

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
	stage, err := stagegen.WriteStage(filepath.Join(work, "stage"),
		stagegen.StageOptions{LargeSize: max(large, 2*stagegen.BlockSize), ManyFiles: 200})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cert, certPEM, err := ftpsd.SelfSigned([]string{"127.0.0.1", "localhost"}, 30*24*time.Hour)
	if err != nil {
		return fmt.Errorf("demo: certificate: %w", err)
	}
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srv, err := ftpsd.New(ftpsd.Config{Root: stage.Root, Anonymous: true, Logger: log,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer srv.Close()
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	port := addr.(*net.TCPAddr).Port

	m := mountFlags{
		server: serverFlags{host: "127.0.0.1", port: port, tlsMode: "explicit", user: "anonymous",
			email: "demo@mastfs.invalid", remoteDir: demoRemoteDir, caFile: caFile, maxConns: 4,
			timeout: 30 * time.Second},
		logs:      logs,
		cacheDir:  filepath.Join(work, "cache"),
		cacheSize: "2GiB",
		dirTTL:    5 * time.Minute,
	}
	guide := demoGuide(shownMP, work, port, caFile)
	err = serve(&m, mountpoint, log, os.Stdin, func() { fmt.Print(guide) })
	if err == nil {
		fmt.Fprintf(os.Stderr, "mastfs demo: unmounted %s and stopped the server\n", shownMP)
	}
	return err
}

// demoGuide is what the demo prints once mounted.
func demoGuide(mp, work string, port int, caFile string) string {
	self := os.Args[0]
	if !strings.Contains(self, "/") {
		self = "mastfs"
	}
	q := shellQuote
	jwst := path.Join(mp, path.Base(stagegen.JWSTFile))
	return fmt.Sprintf(`
mastfs demo: a MAST-like stage is mounted at %[1]s
  served from %[2]s/stage by an FTPS server inside this process
  (127.0.0.1:%[3]d, explicit TLS, certificate %[4]s), mounted as %[5]s

Try, in another terminal:
  ls -l %[1]s
  cp %[6]s /tmp/
  python3 -c 'from astropy.io import fits; print(fits.getheader("%[7]s")["TELESCOP"])'
  %[8]s prefetch %[9]s           # warm the cache, with a progress bar
  %[8]s status %[1]s
  %[8]s cache du --cache-dir %[10]s

Walk every step of talking to the server, as you would with MAST's:
  %[8]s check --host 127.0.0.1 --port %[3]d --ca-file %[4]s --remote-dir %[5]s

Ctrl-C unmounts and stops.
`, q(mp), work, port, q(caFile), demoRemoteDir, q(path.Join(mp, path.Base(stagegen.HSTFile))), jwst,
		self, q(path.Join(mp, "large")), q(filepath.Join(work, "cache")))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@:+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
