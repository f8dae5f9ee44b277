package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"mastfs/cmd/mastfs/internal/daemon"
)

// background starts the mount again in the background (package daemon) and
// waits until it has mounted. A password is asked for here, on the
// terminal, and handed to the child on its standard input.
func background(m *mountFlags, args []string, log *slog.Logger) error {
	childArgs := append([]string{"mount"}, args...)
	var secret string
	var err error
	if !isAnonymous(m.server.user) {
		if secret, err = m.server.password(os.Stdin); err != nil {
			return err
		}
		if !m.server.passwordStdin {
			childArgs = append([]string{"mount", "--password-stdin"}, args...)
		}
	}
	if m.logs.file == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			lf := filepath.Join(dir, "mastfs", "mastfs.log")
			if err := os.MkdirAll(filepath.Dir(lf), 0o700); err == nil {
				childArgs = append([]string{"mount", "--log-file", lf}, childArgs[1:]...)
				log.Info("logging to file", "file", lf)
			}
		}
	}
	return daemon.Start(childArgs, secret)
}
