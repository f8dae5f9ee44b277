package ftpstest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"mastfs/ftps/stagegen"
)

// stateDir keeps what must agree across test binaries running at once: the
// account's password (0600) and the lock that guards creating it. .ci/deps
// unpacks pure-ftpd beside it.
const stateDir = "/var/cache/mastfs-test"

// account is a local user the servers authenticate.
type account struct {
	name     string
	uid, gid int
	password string
}

// ensureAccount creates the local account name if it is missing and returns
// it with its password. Test binaries of several packages run at once and
// share the account, so the password is made once, kept in a root-only file,
// and both steps happen under a file lock.
func ensureAccount(name string) (*account, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(stateDir, "accounts.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	pwFile := filepath.Join(stateDir, name+".password")
	u, lookErr := user.Lookup(name)
	if lookErr != nil {
		var unknown user.UnknownUserError
		if !errors.As(lookErr, &unknown) {
			return nil, fmt.Errorf("look up %s: %w", name, lookErr)
		}
		// A real shell: Debian's /etc/pam.d/vsftpd requires one listed in
		// /etc/shells. Home "/": vsftpd changes into the home directory
		// before local_root, so it must exist, and nothing is kept there.
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/", "--shell", "/bin/sh",
			"--comment", "mastfs integration tests", name).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("look up %s after useradd: %w", name, err)
		}
		_ = os.Remove(pwFile) // a password for a former account of that name
	}
	if st, err := os.Stat(u.HomeDir); err != nil || !st.IsDir() {
		if out, err := exec.Command("usermod", "--home", "/", name).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("usermod %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	}
	pw, err := os.ReadFile(pwFile)
	if errors.Is(err, fs.ErrNotExist) {
		pw, err = newPassword(name, pwFile)
	}
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &account{name: name, uid: uid, gid: gid, password: strings.TrimSpace(string(pw))}, nil
}

// newPassword sets a fresh random password through chpasswd's standard
// input (never its command line) and keeps it in file.
func newPassword(name, file string) ([]byte, error) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw)
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chpasswd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(pw), nil
}

// ftpAccount returns the system user that anonymous sessions run as in
// both servers ("ftp", made by Debian's vsftpd package), creating it and
// its home directory when missing. pure-ftpd takes that home directory as
// the anonymous root, so it must exist to be mounted over.
func ftpAccount() (home string, err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(stateDir, "accounts.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	u, err := user.Lookup("ftp")
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/srv/ftp", "--shell", "/usr/sbin/nologin", "ftp").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("useradd ftp: %v: %s", err, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup("ftp"); err != nil {
			return "", err
		}
	}
	if st, err := os.Stat(u.HomeDir); err != nil || !st.IsDir() {
		if err := os.MkdirAll(u.HomeDir, 0o755); err != nil {
			return "", fmt.Errorf("ftp home %s: %w", u.HomeDir, err)
		}
	}
	return u.HomeDir, nil
}

func lockFile(p string) (unlock func(), err error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { _ = f.Close() }, nil
}

// reachable lets the account walk down to the stage: vsftpd changes into
// local_root as that user before it chroots. Test directories are made
// 0700, so missing search bits are added on directories under the
// temporary directory; anywhere else the caller must see to it.
func reachable(s *stagegen.Stage) error {
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(s.Root); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if d == tmp || !strings.HasPrefix(d, tmp+"/") {
				return fmt.Errorf("%s is not searchable by others: the account cannot reach the stage", d)
			}
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

var (
	grantMu sync.Mutex                       // guards granted
	granted = map[*stagegen.Stage]struct{}{} // stages whose account owns UserDir
)

// grant gives the account its stage: owned by it, read-only even to it
// (uploads are no part of MAST, and pure-ftpd would take them), closed to
// everyone else. It updates the stage record to match.
func grant(s *stagegen.Stage, a *account) error {
	grantMu.Lock()
	defer grantMu.Unlock()
	if _, ok := granted[s]; ok {
		return nil
	}
	for _, f := range s.Files {
		if f.Path != s.UserDir && !strings.HasPrefix(f.Path, s.UserDir+"/") {
			continue
		}
		local := s.Local(f.Path)
		if err := os.Lchown(local, a.uid, a.gid); err != nil {
			return err
		}
		if f.IsDir() {
			if err := os.Chmod(local, 0o500); err != nil {
				return err
			}
			f.Mode = fs.ModeDir | 0o500
		}
	}
	granted[s] = struct{}{}
	return nil
}

// traverseOnly makes the stage root and the folders that hold stages mode
// 711 and updates the stage record to match.
func traverseOnly(s *stagegen.Stage) error {
	grantMu.Lock()
	defer grantMu.Unlock()
	if err := os.Chmod(s.Root, 0o711); err != nil {
		return err
	}
	for _, p := range []string{"anonymous", s.User, stagegen.OtherUser} {
		f, ok := s.Lookup(p)
		if !ok {
			return fmt.Errorf("stage has no %s", p)
		}
		if err := os.Chmod(s.Local(p), 0o711); err != nil {
			return err
		}
		f.Mode = fs.ModeDir | 0o711
	}
	return nil
}
