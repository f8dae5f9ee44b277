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
	if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetLogs(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(900 * time.Millisecond)
	cmds, err := s.Commands()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToUpper(strings.Join(cmds, "\n")), "NOOP") {
		t.Errorf("no NOOP on an idle connection: %q", cmds)
	}
	if st := c.Stats(); st.Open != 1 {
		t.Errorf("%d connections open while warm, want 1", st.Open)
	}
	deadline := time.Now().Add(5 * time.Second)
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
