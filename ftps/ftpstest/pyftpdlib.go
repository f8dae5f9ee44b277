package ftpstest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pyftpdlib 1.5.7 (Debian 12's python3-pyftpdlib, with python3-openssl for
// TLS_FTPHandler), run by /usr/bin/python3 from a script the harness writes
// into the server's folder, as these servers run it:
//   - One process, one event loop; each session reads the disk as its user
//     ("ftp" for anonymous, the account otherwise), both rooted at the
//     stage, so file modes deny what they deny on vsftpd.
//   - TLS required on control and data connections; no session reuse
//     demanded. Explicit TLS only.
//   - A data connection that sends bytes before the transfer command (a
//     TLS ClientHello, say) is closed; the command is then answered 150
//     and nothing more (no final reply within a minute). A connection made
//     ahead that stays silent until the command gets "125 Data connection
//     already open" and works. curl 7.88 sends its ClientHello as soon as
//     it connects, and fails here too.
//   - FEAT: AUTH SSL, AUTH TLS, EPRT, EPSV, MDTM, MFMT, MLST, PBSZ, PROT,
//     REST STREAM, SIZE, TVFS, UTF8. LIST shows owner and group names and
//     UTC times, symlinks as "name -> target". LIST of a directory it may
//     not open answers 550.
//   - Beyond Options.MaxClients or MaxPerIP a connection is greeted 421.
//     pyftpdlib counts every socket of its loop against its cap (data
//     connections too); the script allows one more for the listener.
//   - The script writes the command log (PASS hidden) and a wu-ftpd style
//     transfer log with local paths, spaces written "_".

//go:embed pyftpd.py
var pyftpdlibScript []byte

// pyftpdlibPython is the interpreter Debian's python3-pyftpdlib installs
// for; a python3 earlier on PATH may be another install without it.
const pyftpdlibPython = "/usr/bin/python3"

// pyftpdlibConfig is what the script reads from its JSON argument.
type pyftpdlibConfig struct {
	Name        string `json:"name"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	PasvMin     int    `json:"pasv_min"`
	PasvMax     int    `json:"pasv_max"`
	PasvAddress string `json:"pasv_address,omitempty"`
	MaxClients  int    `json:"max_clients,omitempty"`
	MaxPerIP    int    `json:"max_per_ip,omitempty"`
	MaxTLS      string `json:"max_tls,omitempty"`
	Root        string `json:"root"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CommandLog  string `json:"command_log"`
	XferLog     string `json:"xfer_log"`
}

// StartPyftpdlib starts pyftpdlib's TLS_FTPHandler on 127.0.0.1 serving
// o.Stage (or a fresh default stage) and stops it when the test ends.
func StartPyftpdlib(t testing.TB, o Options) *Server {
	t.Helper()
	python := need(t, "pyftpdlib", func() (string, error) { return pyftpdlibPython, pyftpdlibAvailable() },
		"make deps (or: apt-get install python3-pyftpdlib python3-openssl)")
	if o.Implicit {
		t.Fatalf("pyftpdlib: implicit TLS is not set up; use StartVsftpd for it")
	}
	return newServer(t, "pyftpdlib", o, func(s *Server) error {
		s.ProtocolLog = filepath.Join(s.Dir, "commands.log")
		s.protocolLine = commandLine
		s.Quirks = Quirks{EarlyBytesRefused: true}
		script := filepath.Join(s.Dir, "pyftpd.py")
		if err := os.WriteFile(script, pyftpdlibScript, 0o600); err != nil {
			return err
		}
		c := pyftpdlibConfig{
			Name: s.Name, Host: s.Host, Port: s.Port,
			PasvMin: s.PasvMin, PasvMax: s.PasvMax, PasvAddress: o.PasvAddress,
			MaxClients: o.MaxClients, MaxPerIP: o.MaxPerIP,
			Root: s.Stage.Root, User: s.User, Password: s.Password,
			Cert: filepath.Join(s.Dir, "cert.pem"), Key: filepath.Join(s.Dir, "key.pem"),
			CommandLog: s.ProtocolLog, XferLog: s.XferLog,
		}
		if o.MaxTLS != 0 {
			name, err := tlsVersionName(o.MaxTLS)
			if err != nil {
				return err
			}
			c.MaxTLS = strings.TrimPrefix(name, "TLSv")
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		conf := filepath.Join(s.Dir, "pyftpd.json")
		if err := os.WriteFile(conf, b, 0o600); err != nil {
			return err
		}
		prefix := []string{s.Stage.Root}
		if real, err := filepath.EvalSymlinks(s.Stage.Root); err == nil && real != s.Stage.Root {
			prefix = append(prefix, real)
		}
		s.pathPrefix = prefix
		s.newCmd = func() *exec.Cmd { return exec.Command(python, "-I", script, conf) }
		return nil
	})
}

// pyftpdlibAvailable reports whether /usr/bin/python3 has pyftpdlib and
// pyOpenSSL.
func pyftpdlibAvailable() error {
	out, err := exec.Command(pyftpdlibPython, "-I", "-c", "import pyftpdlib, OpenSSL").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s lacks pyftpdlib or pyOpenSSL: %v: %s", pyftpdlibPython, err, strings.TrimSpace(string(out)))
	}
	return nil
}
