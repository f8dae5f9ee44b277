package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"mastfs/cmd/mastfs/internal/secret"
	"mastfs/ftps"
)

// serverFlags are shared by every command that talks to a server.
type serverFlags struct {
	host, tlsMode, user, email, remoteDir, caFile string
	passwordFile                                  string
	port, maxConns                                int
	passwordStdin, insecureSkipVerify, plaintext  bool
	timeout                                       time.Duration
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.host, "host", ftps.DefaultHost, "server `host`, host:port, or ftps://host for implicit TLS (sftp:// cannot work: sftp is not FTP)")
	fs.IntVar(&s.port, "port", 0, "server `port` (default 21, or 990 with --tls implicit)")
	fs.StringVar(&s.tlsMode, "tls", "explicit", "`explicit` (AUTH TLS) or implicit TLS")
	fs.StringVar(&s.user, "user", "anonymous", "login `name`: anonymous, or your registered email for exclusive-access data")
	fs.StringVar(&s.email, "email", "", "email `address` sent as the anonymous password (env MASTFS_EMAIL)")
	fs.BoolVar(&s.passwordStdin, "password-stdin", false, "read the password from the first line of standard input (else env MASTFS_PASSWORD, else a prompt)")
	fs.StringVar(&s.passwordFile, "password-file", "", "read the password from the first line of `file` (mode 0600), e.g. for an fstab mount")
	fs.StringVar(&s.remoteDir, "remote-dir", "/", "remote `directory` shown at the mount's root, e.g. /anonymous/anonymous12345")
	fs.StringVar(&s.caFile, "ca-file", "", "trust the PEM certificates in `file` instead of the system roots")
	fs.BoolVar(&s.insecureSkipVerify, "insecure-skip-verify", false, "do not verify the server certificate (local test servers only)")
	fs.BoolVar(&s.plaintext, "insecure-plaintext", false, "plain FTP with no TLS, password in clear (local experiments only)")
	fs.IntVar(&s.maxConns, "max-conns", 4, "control connections to the server at most")
	fs.DurationVar(&s.timeout, "timeout", 30*time.Second, "deadline of one network step")
}

// config turns the flags into an ftps.Config, asking for a password when
// the user is not anonymous. The password never comes from argv.
func (s *serverFlags) config(log *slog.Logger, stdin io.Reader) (ftps.Config, error) {
	host, port, mode, dir, err := ftps.ParseAddress(s.host)
	if err != nil {
		return ftps.Config{}, usageError{err.Error()}
	}
	if mode != ftps.Implicit { // an ftps:// address already chose implicit TLS
		if mode, err = ftps.ParseTLSMode(s.tlsMode); err != nil {
			return ftps.Config{}, usageError{err.Error()}
		}
	}
	if s.plaintext {
		mode = ftps.Plaintext
		log.Warn("--insecure-plaintext: the password and all data cross the network in clear; the MAST server refuses this")
	}
	if s.port != 0 {
		port = s.port
	}
	cfg := ftps.Config{
		Host: host, Port: port, TLS: mode, User: s.user,
		InsecureSkipVerify: s.insecureSkipVerify, MaxConns: s.maxConns,
		Timeout: s.timeout, Logger: log,
	}
	if dir != "" && s.remoteDir == "/" {
		s.remoteDir = dir
	}
	if s.caFile != "" {
		pool, err := ftps.LoadCAFile(s.caFile)
		if err != nil {
			return ftps.Config{}, err
		}
		cfg.RootCAs = pool
	}
	if isAnonymous(s.user) {
		cfg.Password = s.email
		if cfg.Password == "" {
			cfg.Password = os.Getenv("MASTFS_EMAIL")
		}
		if cfg.Password == "" {
			cfg.Password = "anonymous@mastfs"
		}
		return cfg, nil
	}
	pw, err := s.password(stdin)
	if err != nil {
		return ftps.Config{}, err
	}
	cfg.Password = pw
	return cfg, nil
}

func isAnonymous(user string) bool {
	u := strings.ToLower(user)
	return u == "anonymous" || u == "ftp" || u == ""
}

// password reads the secret: stdin with --password-stdin, else the
// --password-file, else MASTFS_PASSWORD, else a no-echo prompt on the
// terminal.
func (s *serverFlags) password(stdin io.Reader) (string, error) {
	switch {
	case s.passwordStdin:
		return secret.FromReader(stdin)
	case s.passwordFile != "":
		return secret.FromFile(s.passwordFile)
	}
	if pw := os.Getenv(secret.Env); pw != "" {
		return pw, nil
	}
	return secret.Prompt(s.user, s.host)
}

// logFlags choose where and how much to log.
type logFlags struct {
	level   string
	verbose bool
	file    string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "`level`: debug, info, warn or error")
	fs.BoolVar(&l.verbose, "v", false, "verbose: same as --log-level debug")
	fs.StringVar(&l.file, "log-file", "", "append logs to `file` instead of standard error")
}

func (l *logFlags) logger() (*slog.Logger, io.Closer, error) {
	var lvl slog.Level
	if l.verbose {
		lvl = slog.LevelDebug
	} else if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", l.level)}
	}
	var w io.Writer = os.Stderr
	var closer io.Closer = io.NopCloser(nil)
	if l.file != "" {
		f, err := os.OpenFile(l.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		w, closer = f, f
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), closer, nil
}

// parse parses args, printing help with examples on -h.
func parse(fs *flag.FlagSet, args []string, examples string) error {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of mastfs %s:\n", fs.Name())
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(out, "\nExamples:\n%s", examples)
		}
	}
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{}
	}
	return nil
}
