// Package secret reads a password from where a user may keep it for
// mastfs: the first line of standard input, a file only its owner can
// read, or a prompt on the terminal that does not echo. A password never
// comes from the command line.
package secret

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Env is the environment variable a password may also come from.
const Env = "MASTFS_PASSWORD"

// FromReader reads the first line of r, as --password-stdin does.
func FromReader(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("--password-stdin: standard input held no password")
	}
	return line, nil
}

// Prompt asks for the password of user at host on the terminal, without
// echo.
func Prompt(user, host string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("user %s needs a password and there is no terminal to ask on: use --password-stdin or %s", user, Env)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Password for %s at %s: ", user, host)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("empty password")
	}
	return string(b), nil
}

// FromFile reads a password from the first line of a file, which
// others must not be able to read.
func FromFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("password file %s is readable by others (mode %v): chmod 600 %s", p, st.Mode().Perm(), p)
	}
	b := make([]byte, 4096)
	n, _ := f.Read(b)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", errors.New("password file " + p + " is empty")
	}
	return line, nil
}
