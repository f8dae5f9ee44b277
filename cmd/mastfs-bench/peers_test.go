package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/ftps/ftpstest"
)

// kind says how a peer reaches the stage.
type kind int

const (
	kindCurl  kind = iota // one curl process per file, straight from the server
	kindMount             // a FUSE mount; the action runs ordinary tools on it
	kindLocal             // the stage's own files on local disk, for reference
)

// peer is one way to read the stage.
type peer struct {
	name  string
	kind  kind
	note  string                                          // how it runs, for the results
	argv  func(e *place, dir, cache, log string) []string // mount command line; argv[0] is the program
	env   []string                                        // added to the mount's environment
	quirk string                                          // known limitation, for the results
	as    *syscall.Credential                             // run the FUSE server, and its readers, as this user
}

// place is one server as clients reach it: directly on loopback ("near"),
// or through the delay proxy ("far").
type place struct {
	name   string // "near" or "far"
	host   string // what clients dial
	srv    *ftpstest.Server
	meter  meter
	st     *stage
	work   string // scratch directory for mounts and caches
	pass   string // rclone's obscured anonymous password
	mastfs string // the mastfs binary
	rclone string // rclone's config file (empty)
}

// verifies says whether reads of p are checked by reading the file again.
// Every mount is checked, except rclone-off far away, where the check
// would fetch the file once more at the long path's pace: its reads are
// checked near.
func (e *place) verifies(p *peer) bool { return !(e.name == "far" && p == peerRcloneOff) }

func (p *place) url(rel string) string {
	return fmt.Sprintf("ftp://%s:%d/%s/%s", p.host, p.srv.Port, stageDir, rel)
}

// curl returns the command that downloads rel, or its first n bytes.
func (p *place) curl(rel string, n int64, capture bool, limit time.Duration) command {
	args := []string{"--ssl-reqd", "--cacert", p.srv.CAFile, "-s", "-S",
		"-u", p.srv.AnonUser + ":" + p.srv.AnonPassword}
	if n > 0 {
		args = append(args, "-r", "0-"+strconv.FormatInt(n-1, 10))
	}
	if !capture {
		args = append(args, "-o", os.DevNull)
	}
	return command{name: "curl", args: append(args, p.url(rel)), limit: limit, capture: capture}
}

func mastfsArgs(extra ...string) func(e *place, dir, cache, log string) []string {
	return func(e *place, dir, cache, log string) []string {
		args := []string{e.mastfs, "mount", "--host", e.host, "--port", strconv.Itoa(e.srv.Port),
			"--ca-file", e.srv.CAFile, "--cache-dir", cache, "--cache-size", "4GiB",
			"--max-conns", "4", "--remote-dir", "/" + stageDir, "--log-file", log, "-v"}
		return append(append(args, extra...), dir)
	}
}

func rcloneArgs(mode string, tls13 bool) func(e *place, dir, cache, log string) []string {
	return func(e *place, dir, cache, log string) []string {
		args := []string{"rclone", "mount", ":ftp:/" + stageDir, dir, "--config", e.rclone,
			"--read-only", "--vfs-cache-mode", mode, "--cache-dir", cache,
			"--ftp-host", e.host, "--ftp-port", strconv.Itoa(e.srv.Port),
			"--ftp-user", e.srv.AnonUser, "--ftp-pass", e.pass,
			"--ftp-explicit-tls", "--ftp-no-check-certificate", "--log-file", log}
		if !tls13 {
			args = append(args, "--ftp-disable-tls13")
		}
		return args
	}
}

var (
	peerCurl   = &peer{name: "curl", kind: kindCurl, note: "curl --ssl-reqd --cacert CA ftp://…, one stream per file"}
	peerLocal  = &peer{name: "local", kind: kindLocal, note: "the stage's own files on local disk (page cache warm)"}
	peerMastfs = &peer{name: "mastfs", kind: kindMount, argv: mastfsArgs(),
		note: "mastfs mount --max-conns 4 --cache-size 4GiB (chunk 1 MiB default)"}
	peerMastfs1 = &peer{name: "mastfs-1s", kind: kindMount, argv: mastfsArgs(),
		env:  []string{"MASTFS_UNSTABLE_STREAMS_PER_FILE=1"},
		note: "mastfs mount as above with MASTFS_UNSTABLE_STREAMS_PER_FILE=1 (one stream per file): what reading a file over several streams buys"}
	peerRcloneFull = &peer{name: "rclone-full", kind: kindMount, argv: rcloneArgs("full", false),
		note: "rclone mount --read-only --vfs-cache-mode full --ftp-explicit-tls --ftp-disable-tls13 --ftp-no-check-certificate"}
	peerRcloneOff = &peer{name: "rclone-off", kind: kindMount, argv: rcloneArgs("off", false),
		note: "rclone mount --read-only --vfs-cache-mode off --ftp-explicit-tls --ftp-disable-tls13 --ftp-no-check-certificate"}
	// peerMastfsUser is an ordinary user's mount: mastfs runs as nobody
	// and mounts through fusermount3, without CAP_SYS_ADMIN, so the kernel
	// takes no backing file from it; readers run as nobody too (the mount
	// has no allow_other).
	peerMastfsUser = &peer{name: "mastfs-user", kind: kindMount, argv: mastfsArgs(),
		as:   &syscall.Credential{Uid: 65534, Gid: 65534},
		note: "mastfs mount as above, run by the user nobody (fusermount3, no CAP_SYS_ADMIN: no passthrough), read by nobody"}
	peerRcloneTLS13 = &peer{name: "rclone-default", kind: kindMount, argv: rcloneArgs("full", true),
		note: "rclone mount as documented, without --ftp-disable-tls13"}
)

// mount is one running mount of a peer.
type mount struct {
	p       *peer
	base    string // holds the mount point, cache and log; removed at unmount
	dir     string
	logFile string
	outFile string // the server's standard output and error
	cmd     *exec.Cmd
	done    chan error
	keep    bool // leave the cache at unmount, for a remount
}

// mountOpts shapes a mount beyond its peer.
type mountOpts struct {
	base string // a directory an earlier mount of the peer left (with keep): its cache is used again
	keep bool   // keep the cache at unmount
}

// reader returns the command that runs name on the mount, as the user the
// mount belongs to.
func (m *mount) reader(name string, limit time.Duration, capture bool, args ...string) command {
	return command{name: name, args: args, limit: limit, capture: capture, as: m.p.as}
}

// root is where the stage directory appears.
func (m *mount) root() string { return m.dir }

// pid of the FUSE server process.
func (m *mount) pid() int { return m.cmd.Process.Pid }

// waitIdle waits until the server has no connection open, so that one
// peer's connections, still closing (far away, through the proxy, that
// takes a delay or two), are not counted against the next.
func (e *place) waitIdle() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, d := serverSockets(e.srv.Port, e.srv.PasvMin, e.srv.PasvMax); c == 0 && d == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mount starts p against e and waits until the kernel has the mount. Its
// directory (log kept after the unmount) is named after the place, the
// peer and tag.
func (e *place) mount(p *peer, tag string) (*mount, error) {
	return e.mountWith(p, tag, mountOpts{})
}

// mountWith is mount, shaped by o.
func (e *place) mountWith(p *peer, tag string, o mountOpts) (*mount, error) {
	e.waitIdle()
	base := o.base
	if base == "" {
		var err error
		if base, err = os.MkdirTemp(e.work, e.name+"-"+p.name+"-"+tag+"-"); err != nil {
			return nil, err
		}
	}
	m := &mount{p: p, base: base, dir: filepath.Join(base, "mnt"), logFile: filepath.Join(base, "log-"+tag),
		outFile: filepath.Join(base, "output-"+tag), done: make(chan error, 1), keep: o.keep}
	cache := filepath.Join(base, "cache")
	for _, d := range []string{m.dir, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	argv := p.argv(e, m.dir, cache, m.logFile)
	env := append(os.Environ(), p.env...)
	if p.as != nil {
		var err error
		if argv, err = e.handOver(p.as, base, argv, m.dir, cache); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		env = append(env, "HOME="+base, "XDG_CACHE_HOME="+base, "XDG_RUNTIME_DIR="+base)
	}
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.Env = env
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.as}
	out, err := os.Create(m.outFile)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	m.cmd.Stdout, m.cmd.Stderr = out, out
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !mountinfo.Mounted(m.dir) {
		select {
		case err := <-m.done:
			m.done <- err
			m.cleanup()
			return nil, fmt.Errorf("%s exited before mounting: %v: %s", p.name, err, m.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.unmount()
			return nil, fmt.Errorf("%s: not mounted after 30s: %s", p.name, m.tail())
		}
	}
	return m, nil
}

// handOver lets the user u run a mount in base: the work directory
// becomes traversable, base and the mount's directories become u's, and
// the server's CA certificate is copied where u can read it (argv is
// changed to name the copy).
func (e *place) handOver(u *syscall.Credential, base string, argv []string, dirs ...string) ([]string, error) {
	if err := os.Chmod(e.work, 0o711); err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(e.srv.CAFile)
	if err != nil {
		return nil, err
	}
	caCopy := filepath.Join(base, "ca.pem")
	if err := os.WriteFile(caCopy, ca, 0o644); err != nil {
		return nil, err
	}
	for _, d := range append([]string{base}, dirs...) {
		if err := os.Chown(d, int(u.Uid), int(u.Gid)); err != nil {
			return nil, err
		}
	}
	// The cache of a remount holds files the user's earlier mount made.
	_ = filepath.Walk(filepath.Join(base, "cache"), func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, int(u.Uid), int(u.Gid))
		}
		return err
	})
	out := append([]string(nil), argv...)
	for i, a := range out {
		if a == e.srv.CAFile {
			out[i] = caCopy
		}
	}
	return out, nil
}

// tail is the end of the mount's log and output, for error messages.
func (m *mount) tail() string {
	var parts []string
	for _, f := range []string{m.logFile, m.outFile} {
		b, _ := os.ReadFile(f)
		if s := strings.TrimSpace(string(b)); s != "" {
			parts = append(parts, lastLines(s, 3))
		}
	}
	return strings.Join(parts, " | ")
}

// logText returns the mount's whole log.
func (m *mount) logText() string {
	b, _ := os.ReadFile(m.logFile)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "…"
		}
	}
	return strings.Join(lines, " / ")
}

// unmount stops the FUSE server with SIGTERM, which unmounts; if it does
// not exit in time (a reader hung on the mount, say) it is killed, which
// makes the kernel fail every pending request, and the mount is detached.
// The mount's cache is then removed; its log stays for reading.
func (m *mount) unmount() error {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		err = errors.New(m.p.name + " did not exit within 20s of SIGTERM; killed")
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
		}
	}
	if mountinfo.Mounted(m.dir) {
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		if err == nil {
			err = errors.New(m.p.name + " left its mount behind; detached")
		}
	}
	m.cleanup()
	return err
}

func (m *mount) cleanup() {
	if !m.keep {
		_ = os.RemoveAll(filepath.Join(m.base, "cache"))
	}
	if !mountinfo.Mounted(m.dir) {
		_ = os.Remove(m.dir)
	}
}
