package ftps_test

import (
	"strings"
	"testing"
	"time"

	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// TestIdleConnections: an idle connection is kept warm with NOOP, then
// closed once idle too long; the next operation dials again.
func TestIdleConnections(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	c := clientFor(t, s, false, func(c *ftps.Config) {
		c.KeepAlive = 300 * time.Millisecond
		c.IdleTimeout = 1500 * time.Millisecond
	})
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Open != 1 {
		t.Errorf("%d connections open after a listing, want 1", st.Open)
	}
	// A NOOP in the server's log after the listing's commands is the
	// idle connection kept warm; polled, since a loaded machine may take
	// longer than the idle timeout to get here.
	warm := func() bool {
		cmds, err := s.Commands()
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			if strings.HasPrefix(strings.ToUpper(c), "LIST") || strings.HasPrefix(strings.ToUpper(c), "MLSD") {
				return strings.Contains(strings.ToUpper(strings.Join(cmds[i:], "\n")), "NOOP")
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !warm(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmds, _ := s.Commands()
			t.Fatalf("no NOOP on an idle connection: %q", cmds)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection not closed: %+v", c.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Dials != 2 || st.Discarded != 0 {
		t.Errorf("stats %+v: want a second dial after the idle close, nothing discarded", st)
	}
}
