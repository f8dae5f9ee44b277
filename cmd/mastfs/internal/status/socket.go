package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// SocketName is the control socket's name in the cache directory.
const SocketName = "control.sock"

// ErrNotRegistered means no control socket is linked for a mount point:
// another user's mount, or one made by a mastfs without a control socket.
var ErrNotRegistered = errors.New("no control socket is registered for this mount point")

// Handlers answer the requests of a mount's control socket.
type Handlers struct {
	Report func() Report
	// Refresh drops the listings under rel (relative to the mount's root)
	// and says what changed; nil when the mount cannot.
	Refresh func(ctx context.Context, rel string) (Refreshed, error)
}

// Server answers requests on a mount's control socket.
type Server struct {
	h    Handlers
	log  *slog.Logger
	ln   net.Listener
	sock string // the socket in the cache directory
	link string // the link in the runtime directory; "" if none
	wg   sync.WaitGroup
}

// Serve listens on a control socket (mode 0600) in cacheDir, answering with
// h, and links it from the runtime directory under mountpoint, the
// path the kernel's mount table shows. A socket already there is taken to
// be a dead process's: the caller holds the cache directory's lock. A link
// that cannot be made is logged: the mount then answers only by its socket.
func Serve(cacheDir, mountpoint string, h Handlers, log *slog.Logger) (*Server, error) {
	sock := filepath.Join(cacheDir, SocketName)
	_ = os.Remove(sock)
	ln, err := listenUnix(sock)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	s := &Server{h: h, log: log, ln: ln, sock: sock}
	pruneLinks()
	if link, err := linkPath(mountpoint); err != nil {
		log.Warn("mastfs status will not find this mount by its mount point", "err", err)
	} else {
		_ = os.Remove(link)
		if err := os.Symlink(sock, link); err != nil {
			log.Warn("mastfs status will not find this mount by its mount point", "err", err)
		} else {
			s.link = link
		}
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// listenUnix binds a unix socket. A path longer than the kernel takes
// (108 bytes) is bound through /proc/self/fd and its directory's descriptor.
func listenUnix(p string) (net.Listener, error) {
	if len(p) < 100 {
		return net.Listen("unix", p)
	}
	dir, err := os.Open(filepath.Dir(p))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	ln, err := net.Listen("unix", "/proc/self/fd/"+strconv.Itoa(int(dir.Fd()))+"/"+filepath.Base(p))
	if err != nil {
		return nil, err
	}
	// The /proc name means nothing once dir is closed: Close removes the real one.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.answer(conn)
		}()
	}
}

// request is one request on the control socket, as a JSON line.
type request struct {
	Command string `json:"command"`        // "status" or "refresh"
	Path    string `json:"path,omitempty"` // refresh: relative to the mount's root
}

// Deadlines of one request: a status is figures in memory; a refresh
// lists a directory again, retries included.
const (
	statusWait  = 10 * time.Second
	refreshWait = 3 * time.Minute
)

func (s *Server) answer(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(statusWait))
	var req request
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp any
	switch {
	case err != nil:
		resp = Report{Error: "bad request: " + err.Error()}
	case req.Command == "status":
		resp = s.h.Report()
	case req.Command == "refresh" && s.h.Refresh == nil:
		resp = Refreshed{Error: "this mount cannot refresh its listings"}
	case req.Command == "refresh":
		_ = conn.SetDeadline(time.Now().Add(refreshWait))
		ctx, cancel := context.WithTimeout(context.Background(), refreshWait-5*time.Second)
		r, err := s.h.Refresh(ctx, req.Path)
		cancel()
		if err != nil {
			r = Refreshed{Error: err.Error()}
		}
		resp = r
	default:
		resp = Report{Error: fmt.Sprintf("unknown command %q (this mastfs knows: status, refresh)", req.Command)}
	}
	b, _ := json.Marshal(resp)
	_, _ = conn.Write(append(b, '\n'))
}

// Close stops answering and removes the socket and its link.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
	os.Remove(s.sock)
	if s.link != "" {
		// Only our own link: another mount may have taken the mount point since.
		if target, err := os.Readlink(s.link); err == nil && target == s.sock {
			os.Remove(s.link)
		}
	}
}

// Query asks the mount at mountpoint for its report. It returns an error
// matching ErrNotRegistered when no socket is linked for mountpoint.
func Query(mountpoint string) (Report, error) {
	var r Report
	err := call(mountpoint, request{Command: "status"}, &r, statusWait)
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	return r, err
}

// Refresh asks the mount at mountpoint to drop its listings under rel
// (relative to its root; "" for all) and to say what changed.
func Refresh(mountpoint, rel string) (Refreshed, error) {
	var r Refreshed
	err := call(mountpoint, request{Command: "refresh", Path: rel}, &r, refreshWait)
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	return r, err
}

// call sends req to the mount at mountpoint and decodes its answer into
// resp. It returns an error matching ErrNotRegistered when no socket is
// linked for mountpoint.
func call(mountpoint string, req request, resp any, wait time.Duration) error {
	link, err := linkPath(mountpoint)
	if err != nil {
		return err
	}
	err = roundTrip(link, req, resp, wait)
	if err != nil {
		if _, lerr := os.Lstat(link); errors.Is(lerr, fs.ErrNotExist) {
			return ErrNotRegistered
		}
	}
	return err
}

// roundTrip sends one request to a control socket, or a link to one.
func roundTrip(sock string, req request, resp any, wait time.Duration) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := json.NewDecoder(conn).Decode(resp); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	return nil
}
