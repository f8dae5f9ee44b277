package ftps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"time"

	"github.com/jlaffaye/ftp"
)

// ReadAt streams a file from byte offset off to its end. Close the stream as
// soon as no more bytes are wanted: closing early is normal and leaves the
// connection usable.
func (c *Client) ReadAt(ctx context.Context, file string, off int64) (io.ReadCloser, error) {
	if err := checkPath(file); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", file, off)
	}
	var s *stream
	err := c.attempt(ctx, "read "+file, func(cn *conn) (bool, error) {
		if c.oldTLS(cn) {
			return false, errStaleConn
		}
		cn.deadline(c.cfg.Timeout)
		defer cutOnCancel(ctx, cn)()
		resp, err := cn.sc.RetrFrom(file, uint64(off))
		if err == nil {
			if err = cn.dataAhead(); err != nil && !errors.Is(err, errStaleConn) {
				// The server said no on the data connection: its reply says why.
				cn.deadline(c.cfg.Timeout)
				err = errors.Join(err, resp.Close())
			}
		}
		if err != nil {
			return false, c.opError(cn, "read", file, err)
		}
		s = &stream{c: c, cn: cn, resp: resp, path: file}
		if cn.cannotResume() {
			if err := s.peek(); err != nil {
				return false, c.opError(cn, "read", file, err)
			}
		}
		cn.mu.Lock()
		dc := cn.data
		cn.mu.Unlock()
		s.stop = context.AfterFunc(ctx, func() {
			if dc != nil {
				dc.halt()
			} else {
				_ = resp.SetDeadline(time.Unix(1, 0))
			}
		})
		c.stats.streams.Add(1)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stream is one RETR in progress. It holds its control connection until
// closed.
type stream struct {
	c      *Client
	cn     *conn
	resp   *ftp.Response
	path   string
	stop   func() bool
	n      int64
	eof    bool
	broken bool
	closed bool
	first  []byte // read ahead by peek, for the caller's first Read
}

// peek reads the transfer's first byte before the stream is handed out.
// Under TLS 1.2 without a session ticket the data connection's handshake
// succeeds even with a server that demands session reuse; such a server
// then drops it, and only the reply after the transfer says why (425).
// Reading that reply here gives the caller ErrNoSessionReuse from ReadAt,
// not a broken stream.
func (s *stream) peek() error {
	var b [1]byte
	for {
		n, err := s.resp.Read(b[:])
		if n == 1 {
			s.first = b[:]
			return nil
		}
		if err == nil {
			continue
		}
		// Nothing came: the end of the file, or a refusal.
		s.cn.deadline(s.c.cfg.Timeout)
		if cerr := s.resp.Close(); cerr != nil {
			return errors.Join(err, cerr)
		}
		s.eof = true
		return nil
	}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("read on closed stream")
	}
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		s.n += int64(n)
		return n, nil
	}
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.resp.Read(p)
	s.n += int64(n)
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		s.broken = true
		err = fmt.Errorf("read %s at %d: %w", s.path, s.n, err)
	}
	return n, err
}

// Close ends the transfer. The server answers an early close with 426 (or
// 451), which leaves the reply stream in step: the connection goes back to
// the pool. Anything unexpected discards it. A transfer cut short does not
// hold the caller for that reply, a round trip away: the connection waits
// for it on its own, counted as one coming back (see take), and then makes
// its next data connection ahead.
func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.stop()
	s.c.stats.streams.Add(-1)
	if s.eof {
		return s.finish()
	}
	c := s.c
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.readying++
		c.preparing.Add(1)
	}
	c.mu.Unlock()
	if closed {
		return s.finish()
	}
	go func() {
		defer c.preparing.Done()
		_ = s.finish() // the caller stopped early or already saw the read error
		c.mu.Lock()
		c.readying--
		c.broadcastLocked()
		c.mu.Unlock()
	}()
	return nil
}

// finish reads the server's last word on the transfer and returns the
// connection to the pool, or drops it.
func (s *stream) finish() error {
	wait := s.c.cfg.Timeout
	if !s.eof {
		// Servers answer a transfer cut short at once; pure-ftpd misses a
		// close that comes within some milliseconds of the start and
		// never answers. Don't keep a connection long that we can replace.
		wait = min(wait, 2*time.Second)
	}
	s.cn.deadline(wait)
	err := s.resp.Close()
	var te *textproto.Error
	if err != nil && !s.eof && !s.broken && errors.As(err, &te) && cutShortReply(te.Code) {
		err = nil // the expected answer to a transfer cut short
	}
	if err != nil || s.broken {
		s.c.log.Debug("connection dropped after transfer", "conn", s.cn.id, "path", s.path,
			"read", s.n, "eof", s.eof, "err", err)
		s.c.discard(s.cn)
		if s.eof {
			return fmt.Errorf("read %s: transfer not confirmed: %w", s.path, err)
		}
		return nil
	}
	s.c.put(s.cn)
	return nil
}

// cutShortReply reports whether code is a server's final word on a
// transfer the client closed early: 426 or 451 (vsftpd), a second 150 with
// timing figures (pure-ftpd), or 226 when the last bytes were already sent.
func cutShortReply(code int) bool {
	return code == 426 || code == 451 || code == 450 || code == 226 || (code >= 100 && code < 200)
}

// halt ends the transfer's reads, the one in progress and every later
// one. A deadline in the past alone would not do: each read sets its own
// deadline first, so a halt that comes between two reads would be undone
// and the stream read on until the server stopped sending.
func (d *dataConn) halt() {
	d.halted.Store(true)
	_ = d.Conn.SetDeadline(time.Unix(1, 0))
}

// cutOnCancel ends cn's control exchange in progress when ctx is
// canceled, rather than at the reply's deadline (a whole timeout when the
// server has gone quiet); the connection, out of step then, is dropped
// as after any network error. Call the function it returns before cn is
// handed on: it returns once a cut, if any, is done, so none comes later.
func cutOnCancel(ctx context.Context, cn *conn) func() {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		cn.deadline(-time.Second)
	})
	return func() {
		if !stop() {
			<-done
		}
	}
}
