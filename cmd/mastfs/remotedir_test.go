package main

import (
	"strings"
	"testing"

	"mastfs/ftps/ftpstest"
)

// TestMissingRemoteDirFailsMount: a --remote-dir the server answers 550
// for fails the mount, in the foreground and with --daemon, saying which
// directory on which host, and what a stage's name looks like.
func TestMissingRemoteDirFailsMount(t *testing.T) {
	s := ftpstest.StartVsftpd(t, ftpstest.Options{Stage: sharedStage(t)})
	for _, mode := range [][]string{nil, {"--daemon"}} {
		sp := serverSpec(s, append([]string{"--remote-dir", "/nonexistent"}, mode...)...)
		code, out := mountFails(t, &sp)
		if code != exitFailure {
			t.Errorf("mount %v of a missing directory: exit %d, want %d\n%s", mode, code, exitFailure, out)
		}
		for _, want := range []string{"remote directory /nonexistent does not exist on " + s.Host + " (550)",
			"/anonymous/anonymousNNNNN"} {
			if !strings.Contains(out, want) {
				t.Errorf("mount %v: the message lacks %q:\n%s", mode, want, out)
			}
		}
	}
}
