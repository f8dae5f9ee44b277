// Package sdnotify tells systemd how a service is doing, as sd_notify(3)
// does: one datagram of KEY=VALUE lines to the unix socket that systemd
// names in $NOTIFY_SOCKET. Outside systemd (no $NOTIFY_SOCKET) it does
// nothing. A unit of Type=notify then counts the mount as started only
// once it is ready.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"time"
)

// Env is the variable in which systemd names its socket.
const Env = "NOTIFY_SOCKET"

// States understood by systemd.
const (
	Ready    = "READY=1"    // the service is up
	Stopping = "STOPPING=1" // the service is shutting down
)

// Notify sends state, e.g. Ready or "STATUS=...", one assignment a line.
// It reports whether a socket was named; an error means one was, and the
// datagram could not be sent.
func Notify(state string) (bool, error) {
	addr := os.Getenv(Env)
	if addr == "" {
		return false, nil
	}
	// A name starting with @ is in the abstract namespace; package net
	// maps it so.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return true, fmt.Errorf("notify systemd at %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(state)); err != nil {
		return true, fmt.Errorf("notify systemd at %s: %w", addr, err)
	}
	return true, nil
}
