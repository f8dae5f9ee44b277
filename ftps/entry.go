// Package ftps talks to an FTPS staging server: it dials with explicit or
// implicit TLS, logs in, keeps a bounded pool of control connections, lists
// directories and streams files from any offset. It knows nothing of FUSE or
// of caching.
package ftps

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
)

// Errors a caller decides on. They wrap the io/fs sentinels so that callers
// which do not import ftps can still test them with errors.Is.
var (
	// ErrNotFound means the server answered 550 for a missing file or directory.
	ErrNotFound = &kindError{"not found", fs.ErrNotExist}
	// ErrPermission means the server answered 550 for a path the user may not read.
	ErrPermission = &kindError{"permission denied", fs.ErrPermission}
	// ErrLogin means the server refused the user name or password (530).
	ErrLogin = &kindError{"login failed", fs.ErrPermission}
	// ErrBadName means a path holds CR, LF or NUL and was refused before
	// reaching the wire.
	ErrBadName = &kindError{"name holds CR, LF or NUL", fs.ErrInvalid}
	// ErrNoSessionReuse means the server refuses every data connection
	// that does not resume the control connection's TLS session, over
	// TLS 1.2 without session tickets: Go's TLS resumes TLS 1.2 only by
	// ticket, never by session ID, so no retry can help.
	ErrNoSessionReuse = &kindError{"the server demands TLS session reuse over TLS 1.2 without session tickets, " +
		"which this client cannot do; the server's admin can enable TLS 1.3 or session tickets " +
		"(ProFTPD: TLSSessionTickets on); curl or lftp can download from it meanwhile", nil}
)

type kindError struct {
	msg  string
	base error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.base }

// IsTransient reports whether err is worth retrying on a fresh connection:
// resets, timeouts and the 4xx replies servers send when busy.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var ve *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPermission), errors.Is(err, ErrLogin),
		errors.Is(err, ErrBadName), errors.Is(err, ErrSFTP), errors.Is(err, ErrNoSessionReuse), errors.Is(err, errClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errPermanent), errors.Is(err, errListingTooLarge), errors.As(err, &ve):
		return false
	}
	return true
}
