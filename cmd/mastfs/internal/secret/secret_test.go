package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFromReader(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\nrest\n": "pw", "no newline": "no newline"} {
		if got, err := FromReader(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("FromReader(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := FromReader(strings.NewReader("\n")); err == nil {
		t.Error("an empty line was taken as a password")
	}
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("s3cret\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := FromFile(p); err != nil || got != "s3cret" {
		t.Errorf("FromFile = %q, %v", got, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a file others can read: %v, want a refusal saying chmod 600", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(empty); err == nil {
		t.Error("an empty file was taken as a password")
	}
}
