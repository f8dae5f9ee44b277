package ftpstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// pure-ftpd 1.0.50 (Debian 12), unpacked by .ci/deps rather than installed
// (it conflicts with vsftpd), as these servers run it:
//   - Anonymous sessions are chrooted to the home directory of the "ftp"
//     user, which no flag changes; each server therefore runs in a mount
//     namespace of its own where the stage is bind-mounted over that home.
//   - "USER anonymous" is answered 230 at once: no PASS follows.
//   - The account is a virtual user (puredb) mapped to the local account's
//     uid, chrooted to the stage. pure-pw hashes with argon2 at a cost that
//     makes each login take seconds, so the passwd line is written here
//     with a SHA-512 crypt hash from "openssl passwd -6".
//   - Explicit TLS only: implicit TLS is a compile-time choice this build
//     lacks. --tls 3 refuses plain control and data connections. Data
//     connections need not resume the control connection's session (a Go
//     client's do under TLS 1.2, not under 1.3).
//   - FEAT: UTF8, EPRT, IDLE, MDTM, SIZE, MFMT, REST STREAM, MLST, MLSD,
//     PRET, AUTH TLS, PBSZ, PROT, TVFS, ESTA, PASV, EPSV, ESTP. LIST shows
//     numeric owner and group and local time; MLSD gives a symlink as
//     "type=OS.unix=slink:TARGET".
//   - LIST of a directory it may not open answers 226 "0 matches total"
//     with no data; CWD, SIZE and RETR there answer 550.
//   - Session processes stay in the listener's process group.
//   - Transfer log (--altlog xferlog:FILE): bytes really sent, written when
//     the transfer ends, cut short or not: every line says "c". Paths are
//     local ones (the ftp home or the stage), spaces written as "_",
//     non-ASCII kept. Anonymous users are logged as "ftp".
//   - It logs commands only to syslog, which these machines lack:
//     Commands returns an error wrapping errors.ErrUnsupported.
//   - With no --maxclientsnumber it allows 5 sessions: the default here
//     is 100.

// StartPureFTPd starts pure-ftpd on 127.0.0.1 serving o.Stage (or a fresh
// default stage) and stops it when the test ends.
func StartPureFTPd(t testing.TB, o Options) *Server {
	t.Helper()
	bin := need(t, "pure-ftpd", pureFTPdBinary, "make deps")
	if o.Implicit {
		t.Fatalf("pure-ftpd: this build has no implicit TLS; use StartVsftpd for it")
	}
	for _, prog := range []string{"openssl", "mount", "sh"} {
		if _, err := exec.LookPath(prog); err != nil {
			missing(t, prog+" not found", "make deps (or: apt-get install openssl mount)", false)
		}
	}
	pwBin := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(bin))), "usr/bin/pure-pw")
	if _, err := os.Stat(pwBin); err != nil {
		if pwBin, err = findBinary("pure-pw", "/usr/bin/pure-pw"); err != nil {
			missing(t, err.Error(), "make deps", false)
		}
	}
	home, err := ftpAccount()
	if err != nil {
		t.Fatalf("pure-ftpd: %v", err)
	}
	return newServer(t, "pure-ftpd", o, func(s *Server) error {
		pdb, err := pureDB(s, pwBin)
		if err != nil {
			return err
		}
		env, err := opensslConf(s.Dir, o.MaxTLS)
		if err != nil {
			return err
		}
		maxClients := o.MaxClients
		if maxClients == 0 {
			maxClients = 100
		}
		perIP := o.MaxPerIP
		if perIP == 0 {
			perIP = maxClients
		}
		args := []string{
			"--bind", s.Host + "," + strconv.Itoa(s.Port),
			"--tls", "3",
			"--certfile", filepath.Join(s.Dir, "cert.pem") + "," + filepath.Join(s.Dir, "key.pem"),
			"--passiveportrange", fmt.Sprintf("%d:%d", s.PasvMin, s.PasvMax),
			"--maxclientsnumber", strconv.Itoa(maxClients),
			"--maxclientsperip", strconv.Itoa(perIP),
			"--login", "puredb:" + pdb,
			"--altlog", "xferlog:" + s.XferLog,
			"--chrooteveryone",
			"--dontresolve",
			"--minuid", "1",
			"--anonymouscantupload",
			"--maxidletime", "15",
		}
		if o.PasvAddress != "" {
			args = append(args, "--forcepassiveip", o.PasvAddress)
		}
		s.pathPrefix = []string{home, s.Stage.Root}
		s.newCmd = func() *exec.Cmd {
			// sh binds the stage over the ftp home inside the new mount
			// namespace, then becomes pure-ftpd (same pid, same group).
			script := `mount --bind -- "$1" "$2" || exit 1; shift 2; exec "$@"`
			cmd := exec.Command("sh", append([]string{"-c", script, "sh", s.Stage.Root, home, bin}, args...)...)
			cmd.Env = env
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			return cmd
		}
		return nil
	})
}

// unpackedPlaces are where .ci/deps unpacks a server that is not
// installed, for a path relative to the cache folder.
func unpackedPlaces(rel string) []string {
	places := []string{filepath.Join(stateDir, rel)}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if h, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(h, ".cache")
		}
	}
	if cache != "" {
		places = append(places, filepath.Join(cache, "mastfs-test", rel))
	}
	return places
}

func pureFTPdBinary() (string, error) {
	return findBinary("pure-ftpd", unpackedPlaces("pure-ftpd/usr/sbin/pure-ftpd")...)
}

// pureDB writes the virtual-user database: one user, the account, mapped
// to its uid and chrooted ("/./") to the stage. The password reaches
// openssl on its standard input, never on a command line.
func pureDB(s *Server, pwBin string) (string, error) {
	acct, err := ensureAccount(s.User)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(s.Password + "\n")
	hash, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("openssl passwd: %w", err)
	}
	// login:hash:uid:gid:gecos:home, then the unused quota and limit fields.
	line := fmt.Sprintf("%s:%s:%d:%d::%s/./::::::::::::\n",
		s.User, strings.TrimSpace(string(hash)), acct.uid, acct.gid, s.Stage.Root)
	passwd := filepath.Join(s.Dir, "pureftpd.passwd")
	pdb := filepath.Join(s.Dir, "pureftpd.pdb")
	if err := os.WriteFile(passwd, []byte(line), 0o600); err != nil {
		return "", err
	}
	if out, err := exec.Command(pwBin, "mkdb", pdb, "-f", passwd).CombinedOutput(); err != nil {
		return "", fmt.Errorf("pure-pw mkdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return pdb, nil
}
