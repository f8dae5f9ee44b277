package ftps_test

import (
	"context"
	"io"
	"testing"
	"time"

	"mastfs/ftps"
	"mastfs/ftps/ftpstest"
	"mastfs/ftps/ftpstest/netproxy"
	"mastfs/ftps/stagegen"
)

// TestReadAtCancelBetweenReads: a stream's context canceled while no read
// is in progress ends the stream all the same. Each read bounds itself by
// a fresh deadline; it must not undo the one the cancel set, or a stream
// told to stop reads on until the server stops sending (a whole timeout
// when it stalls), and an unmount waits for it.
func TestReadAtCancelBetweenReads(t *testing.T) {
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: 64 << 20, ManyFiles: -1})
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: st})
	c := clientFor(t, s, false, nil)
	defer c.Close()
	f, _ := st.Lookup(stagegen.LargeFile)

	for range 3 { // the cancel lands between reads, wherever in the stream
		rctx, cancel := context.WithCancel(ctx(t))
		rc, err := c.ReadAt(rctx, "/"+stagegen.LargeFile, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
			t.Fatal(err)
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err == nil {
			t.Fatalf("a stream whose context was canceled read on to the end of the file (%d more bytes of %d)", n, f.Size)
		}
		// What was already received may still come (the socket's buffer,
		// at most tcp_rmem's 32 MiB here), never the whole rest: the file
		// is twice that.
		t.Logf("%d bytes after the cancel, then: %v", n, err)
	}
}

// TestReadAtCancelWhileServerSilent: a ReadAt waiting for the reply to its
// transfer command from a server gone quiet returns when its context is
// canceled, not at the reply's deadline (ten minutes here, so only the
// cancel can end it within the test's bound).
func TestReadAtCancelWhileServerSilent(t *testing.T) {
	_, p, newClient := proxied(t, faultStage(t), netproxy.Config{}, func(c *ftps.Config) { c.Timeout = 10 * time.Minute })
	c := newClient()
	defer c.Close()
	if _, err := c.List(ctx(t), "/"+stagegen.AnonDir); err != nil {
		t.Fatal(err)
	}
	// Wait until its connection is back in the pool, its data connection
	// made ahead: ReadAt then takes it at once, and waits on the wire.
	for deadline := time.Now().Add(30 * time.Second); c.Stats().Busy != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the listing's connection is not back in the pool after 30 s: %+v", c.Stats())
		}
	}
	p.Stall(true)
	defer p.Stall(false)
	rctx, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() {
		rc, err := c.ReadAt(rctx, "/"+stagegen.LargeFile, 0)
		if err == nil {
			rc.Close()
		}
		done <- err
	}()
	time.AfterFunc(200*time.Millisecond, cancel) // most likely while RETR waits for its reply
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ReadAt on a silent server succeeded")
		}
		t.Logf("ReadAt after the cancel: %v", err)
		if st := c.Stats(); st.Discarded != 1 {
			t.Errorf("%d connections dropped, want 1: the one whose exchange the cancel cut (%+v)", st.Discarded, st)
		}
	case <-time.After(time.Minute):
		t.Fatal("ReadAt still waiting for a silent server a minute after its context was canceled")
	}
}
