package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errTimeout marks a command that ran past its limit and was killed.
var errTimeout = errors.New("time limit reached")

// outcome is what one command did.
type outcome struct {
	dur time.Duration
	out []byte        // standard output, when asked for
	err error         // exit status, start failure or errTimeout, with stderr's tail
	cpu time.Duration // user and system time of the process and its children
}

// command is one external program run under a time limit.
type command struct {
	name    string
	args    []string
	limit   time.Duration
	capture bool                // keep standard output; otherwise it goes to /dev/null
	as      *syscall.Credential // run as this user; nil: as the bench
}

// start launches c in a process group of its own, so that a time limit
// reaches everything it forked. The returned wait gives the outcome; it
// never blocks for much longer than the limit, even when the process is
// stuck in the kernel (a read on a hung FUSE mount): it then returns the
// timeout and leaves the process to whoever tears the mount down.
func (c command) start() (wait func() outcome) {
	cmd := exec.Command(c.name, c.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: c.as}
	var stdout, stderr bytes.Buffer
	cmd.Stderr = &tailWriter{buf: &stderr, max: 2048}
	var devnull *os.File
	if c.capture {
		cmd.Stdout = &stdout
	} else {
		var err error
		if devnull, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return func() outcome { return outcome{err: err} }
		}
		cmd.Stdout = devnull // the program writes there itself, with no pipe in between
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		if devnull != nil {
			devnull.Close()
		}
		return func() outcome { return outcome{err: fmt.Errorf("start %s: %w", c.name, err)} }
	}
	done := make(chan error, 1)
	var end time.Time
	go func() {
		err := cmd.Wait()
		end = time.Now()
		done <- err
	}()
	return func() outcome {
		if devnull != nil {
			defer devnull.Close()
		}
		timer := time.NewTimer(time.Until(begin.Add(c.limit)))
		defer timer.Stop()
		select {
		case err := <-done:
			o := outcome{dur: end.Sub(begin), out: stdout.Bytes()}
			if ps := cmd.ProcessState; ps != nil {
				o.cpu = ps.UserTime() + ps.SystemTime()
			}
			if err != nil {
				o.err = fmt.Errorf("%s: %w: %s", c.name, err, oneLine(stderr.String()))
			}
			return o
		case <-timer.C:
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return outcome{dur: c.limit, err: fmt.Errorf("%s: %w (%v)", c.name, errTimeout, c.limit)}
	}
}

// run starts c and waits for it.
func (c command) run() outcome { return c.start()() }

// runAll runs the commands at once and returns the wall time until the
// last ends, and the first error.
func runAll(cmds []command) (time.Duration, error) {
	begin := time.Now()
	waits := make([]func() outcome, len(cmds))
	for i, c := range cmds {
		waits[i] = c.start()
	}
	var errs []error
	for _, w := range waits {
		if o := w(); o.err != nil {
			errs = append(errs, o.err)
		}
	}
	wall := time.Since(begin)
	return wall, errors.Join(errs...)
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if extra := w.buf.Len() - w.max; extra > 0 {
		w.buf.Next(extra)
	}
	return len(p), nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// vmHWM returns a process's peak resident set size in bytes, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuTime returns a running process's user and system time so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, which is
// USER_HZ on Linux), or -1 when it cannot be read.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// connWatch polls the kernel's socket table for the server's side of
// established connections: on its control port, and on its passive range.
// Each client control connection is one server-side socket on the control
// port, whichever way it came (directly or through the proxy).
type connWatch struct {
	stop chan struct{}
	done chan struct{}

	mu               sync.Mutex // guards maxCtrl, maxData
	maxCtrl, maxData int
}

func watchConns(ctrl, pasvMin, pasvMax int) *connWatch {
	w := &connWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			c, d := serverSockets(ctrl, pasvMin, pasvMax)
			w.mu.Lock()
			w.maxCtrl, w.maxData = max(w.maxCtrl, c), max(w.maxData, d)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// end stops polling and returns the most connections seen at once.
func (w *connWatch) end() (ctrl, data int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxCtrl, w.maxData
}

// serverSockets counts established IPv4 sockets on 127.0.0.1 whose local
// port is the control port, or in the passive range.
func serverSockets(ctrl, pasvMin, pasvMax int) (nctrl, ndata int) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	// The table is read in pieces while it changes, so a socket can show
	// up twice (other programs churning through connections make that
	// common): count each pair of addresses once.
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 || fl[3] != "01" || seen[fl[1]+fl[2]] { // 01: ESTABLISHED
			continue
		}
		seen[fl[1]+fl[2]] = true
		host, port, ok := strings.Cut(fl[1], ":")
		if !ok || host != "0100007F" { // 127.0.0.1, little-endian hex
			continue
		}
		p, err := strconv.ParseInt(port, 16, 32)
		if err != nil {
			continue
		}
		switch {
		case int(p) == ctrl:
			nctrl++
		case int(p) >= pasvMin && int(p) <= pasvMax:
			ndata++
		}
	}
	return nctrl, ndata
}
