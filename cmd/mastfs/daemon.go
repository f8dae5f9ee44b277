package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"mastfs/cmd/mastfs/internal/daemon"
	"mastfs/cmd/mastfs/internal/sdnotify"
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
	pid, err := daemon.Start(childArgs, secret)
	if err != nil {
		return err
	}
	// Under systemd (Type=notify), the mount now runs in the child.
	notify(log, fmt.Sprintf("%s\nMAINPID=%d", sdnotify.Ready, pid))
	return nil
}

// notify tells systemd state when it runs us; a failure costs only the
// unit's view of the mount, so it is logged.
func notify(log *slog.Logger, state string) {
	if sent, err := sdnotify.Notify(state); err != nil {
		log.Warn("could not tell systemd", "state", state, "err", err)
	} else if sent {
		log.Debug("told systemd", "state", state)
	}
}
