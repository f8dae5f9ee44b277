package status

import (
	"bufio"
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

// Server answers status requests on a mount's control socket.
type Server struct {
	report func() Report
	log    *slog.Logger
	ln     net.Listener
	sock   string // the socket in the cache directory
	link   string // the link in the runtime directory; "" if none
	wg     sync.WaitGroup
}

// Serve listens on a control socket (mode 0600) in cacheDir, answering with
// report, and links it from the runtime directory under mountpoint, the
// path the kernel's mount table shows. A socket already there is taken to
// be a dead process's: the caller holds the cache directory's lock. A link
// that cannot be made is logged: the mount then answers only by its socket.
func Serve(cacheDir, mountpoint string, report func() Report, log *slog.Logger) (*Server, error) {
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
	s := &Server{report: report, log: log, ln: ln, sock: sock}
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
	Command string `json:"command"` // "status"
}

func (s *Server) answer(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var req request
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp Report
	switch {
	case err != nil:
		resp.Error = "bad request: " + err.Error()
	case req.Command == "status":
		resp = s.report()
	default:
		resp.Error = fmt.Sprintf("unknown command %q (this mastfs knows: status)", req.Command)
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
	link, err := linkPath(mountpoint)
	if err != nil {
		return Report{}, err
	}
	r, err := query(link)
	if err != nil {
		if _, lerr := os.Lstat(link); errors.Is(lerr, fs.ErrNotExist) {
			return Report{}, ErrNotRegistered
		}
	}
	return r, err
}

// query asks the mount behind a control socket, or a link to one.
func query(sock string) (Report, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return Report{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := json.Marshal(request{Command: "status"})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return Report{}, err
	}
	var r Report
	if err := json.NewDecoder(conn).Decode(&r); err != nil {
		return Report{}, fmt.Errorf("read the answer: %w", err)
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}
