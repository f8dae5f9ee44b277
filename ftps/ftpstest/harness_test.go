package ftpstest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/stagegen"
)

// curlResult is what one curl run gave.
type curlResult struct {
	out  []byte
	errs string // curl's stderr, with -v the protocol dialogue
	code int    // curl's exit code
}

// curl runs curl against s with TLS required and the test CA trusted. With
// user set it logs in as the account through a 0600 netrc file, so the
// password never appears on a command line.
func curl(t *testing.T, s *Server, user bool, ftpPath string, extra ...string) curlResult {
	t.Helper()
	return curlURLs(t, s, user, append(extra, s.URL(ftpPath))...)
}

// curlURLs runs curl with the given arguments, URLs among them; curl reuses
// one control connection for several URLs on the same server.
func curlURLs(t *testing.T, s *Server, user bool, args ...string) curlResult {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		missing(t, "curl not found", "make deps (or: apt-get install curl)", false)
	}
	all := []string{"-sS", "--ssl-reqd", "--cacert", s.CAFile, "--max-time", "120"}
	if user {
		netrc := filepath.Join(t.TempDir(), "netrc")
		line := fmt.Sprintf("machine %s login %s password %s\n", s.Host, s.User, s.Password)
		if err := os.WriteFile(netrc, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		all = append(all, "--netrc-file", netrc)
	}
	cmd := exec.Command(bin, append(all, args...)...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err = cmd.Run()
	// curl -v prints the PASS command: keep the password out of test logs.
	r := curlResult{out: out.Bytes(), errs: strings.ReplaceAll(errs.String(), s.Password, "<hidden>")}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("curl: %v", err)
	}
	return r
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestMatrixServesStage(t *testing.T) {
	for _, s := range Matrix(t) {
		t.Run(s.Name, func(t *testing.T) {
			st := s.Stage
			for _, who := range []struct {
				name string
				user bool
			}{{"anonymous", false}, {"user", true}} {
				t.Run(who.name, func(t *testing.T) {
					r := curl(t, s, who.user, "/"+stagegen.AnonDir+"/")
					if r.code != 0 {
						t.Fatalf("list %s: curl exit %d: %s", stagegen.AnonDir, r.code, r.errs)
					}
					for _, f := range st.Children(stagegen.AnonDir) {
						if !bytes.Contains(r.out, []byte(" "+filepath.Base(f.Path))) {
							t.Errorf("listing lacks %q:\n%s", f.Path, r.out)
						}
					}
					gets := map[string]string{stagegen.LinkFile: stagegen.AnonDir + "/" + stagegen.LinkTarget} // the symlink reads as its target
					for _, p := range []string{stagegen.HSTFile, stagegen.JWSTFile, stagegen.SpaceFile, stagegen.UnicodeFile, stagegen.NestedFile, stagegen.EmptyFile} {
						gets[p] = p
					}
					if who.user {
						gets[st.UserFile] = st.UserFile
					}
					checkDownloads(t, s, who.user, gets)
					checkDenied(t, s, who.user, "/"+stagegen.PrivateDir+"/")
					checkDenied(t, s, who.user, "/"+stagegen.SecretFile)
					checkDenied(t, s, who.user, "/"+st.OtherDir+"/")
					if !who.user {
						checkDenied(t, s, false, "/"+st.UserDir+"/")
						checkDenied(t, s, false, "/"+st.UserFile)
					}
				})
			}
		})
	}
}

// checkDownloads fetches each FTP path in one curl run and compares it
// with the stage record of the path it maps to.
func checkDownloads(t *testing.T, s *Server, user bool, gets map[string]string) {
	t.Helper()
	dir := t.TempDir()
	var args []string
	var order []string
	for p := range gets {
		order = append(order, p)
		args = append(args, "-o", filepath.Join(dir, fmt.Sprint(len(order))), s.URL("/"+p))
	}
	r := curlURLs(t, s, user, args...)
	if r.code != 0 {
		t.Errorf("curl exit %d: %s", r.code, r.errs)
	}
	for i, p := range order {
		f, ok := s.Stage.Lookup(gets[p])
		if !ok {
			t.Fatalf("no stage record for %s", gets[p])
		}
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i+1)))
		if err != nil {
			t.Errorf("get %s: %v", p, err)
			continue
		}
		if int64(len(got)) != f.Size || sha(got) != f.SHA256 {
			t.Errorf("get %s: %d bytes sha256 %s, want %d bytes %s", p, len(got), sha(got), f.Size, f.SHA256)
		}
	}
}

func checkDownload(t *testing.T, s *Server, user bool, ftpPath, recordPath string) {
	t.Helper()
	checkDownloads(t, s, user, map[string]string{ftpPath: recordPath})
}

// checkDenied expects a 550 reply to the CWD (directories) or RETR (files)
// that curl sends for p.
func checkDenied(t *testing.T, s *Server, user bool, p string) {
	t.Helper()
	r := curl(t, s, user, p, "-v")
	if r.code == 0 || !strings.Contains(r.errs, "< 550") {
		t.Errorf("%s (user=%v): curl exit %d, want a 550 reply; got:\n%s", p, user, r.code, lastLines(r.errs, 6))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestSentBytesAndCommands(t *testing.T) {
	for _, s := range Matrix(t) {
		t.Run(s.Name, func(t *testing.T) {
			if err := s.ResetLogs(); err != nil {
				t.Fatal(err)
			}
			f, _ := s.Stage.Lookup(stagegen.JWSTFile)
			checkDownload(t, s, false, stagegen.JWSTFile, stagegen.JWSTFile)
			trs, err := s.WaitTransfers(1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			tr := trs[0]
			if tr.Bytes != f.Size || tr.Incoming || tr.User != "anonymous" || tr.Path != "/"+stagegen.JWSTFile || !tr.Complete {
				t.Errorf("transfer %+v, want %d bytes of /%s to anonymous", tr, f.Size, stagegen.JWSTFile)
			}
			if n, err := s.SentBytes(); err != nil || n != f.Size {
				t.Errorf("SentBytes = %d, %v; want %d", n, err, f.Size)
			}

			// A download cut short is logged with what was really sent.
			large, _ := s.Stage.Lookup(stagegen.LargeFile)
			_ = s.ResetLogs()
			cut := cutDownload(t, s, stagegen.LargeFile, 1<<20)
			trs, err = s.WaitTransfers(1, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := s.SentBytes()
			if sent < cut || sent >= large.Size {
				t.Errorf("cut download: SentBytes %d, want between %d and %d", sent, cut, large.Size)
			}
			if s.Impl == "vsftpd" && trs[len(trs)-1].Complete {
				t.Errorf("vsftpd logged a cut-short download as complete: %+v", trs[len(trs)-1])
			}
			t.Logf("cut after %d bytes: server sent %d", cut, sent)

			// Names as the transfer log writes them.
			_ = s.ResetLogs()
			checkDownloads(t, s, false, map[string]string{stagegen.SpaceFile: stagegen.SpaceFile, stagegen.UnicodeFile: stagegen.UnicodeFile})
			trs, err = s.WaitTransfers(2, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{stagegen.SpaceFile, stagegen.UnicodeFile} {
				if !slices.ContainsFunc(trs, func(tr Transfer) bool { return tr.Path == s.LogPath(p) }) {
					t.Errorf("no transfer of %s logged as %s: %+v", p, s.LogPath(p), trs)
				}
			}

			cmds, err := s.Commands()
			if errors.Is(err, errors.ErrUnsupported) {
				t.Logf("Commands: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(cmds, "\n")
			if !strings.Contains(joined, "RETR ") || strings.Contains(joined, s.Password) {
				t.Errorf("commands without RETR, or with the password:\n%s", joined)
			}
			if !strings.Contains(joined, "PASS <hidden>") {
				t.Errorf("commands lack the hidden PASS:\n%s", joined)
			}
		})
	}
}

// cutDownload reads about n bytes of a file with curl and closes early.
func cutDownload(t *testing.T, s *Server, p string, n int) int64 {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "--ssl-reqd", "--cacert", s.CAFile, "--max-time", "60", s.URL("/"+p))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.CopyN(io.Discard, out, int64(n))
	out.Close()
	_ = cmd.Wait() // curl fails writing to the closed pipe: expected
	return got
}
