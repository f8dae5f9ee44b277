package ftps_test

import (
	"context"
	"io"
	"testing"

	"mastfs/ftps/ftpstest"
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
