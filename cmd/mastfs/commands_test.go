package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"mastfs/cmd/mastfs/internal/status"
)

// result is what one run of the mastfs program did.
type result struct {
	stdout, stderr string
	code           int
}

// runMastfs runs the built mastfs with args and no standard input.
func runMastfs(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("mastfs %v: %v", args, err)
	}
	return result{out.String(), errOut.String(), cmd.ProcessState.ExitCode()}
}

// mustRun runs mastfs and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := runMastfs(t, args...)
	if r.code != 0 {
		t.Fatalf("mastfs %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// statusOf asks a mount for its figures with mastfs status --json.
func statusOf(t *testing.T, mountpoint string) status.Report {
	t.Helper()
	var r status.Report
	out := mustRun(t, "status", "--json", mountpoint)
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return r
}

// privateRuntime gives the mounts and commands of a test a runtime
// directory of their own, so that mastfs status sees no other mount's
// control socket on this machine.
func privateRuntime(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
}
