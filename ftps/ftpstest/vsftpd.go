package ftpstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// vsftpd 3.0.3 (Debian 12) as these servers run it:
//   - Anonymous sessions are chrooted to the stage and run as "ftp"; the
//     account logs in through PAM (/etc/pam.d/vsftpd: not in /etc/ftpusers,
//     a shell from /etc/shells), changes into its home directory and then
//     local_root as itself, and is chrooted to the same stage, so both see
//     the same paths.
//   - require_ssl_reuse=YES: a data connection must resume the control
//     connection's TLS session, or it is refused. Go's client does so, with
//     a session cache on the tls.Config, under TLS 1.3 and 1.2, for many
//     data connections in a row.
//   - FEAT: AUTH TLS, EPSV, MDTM, PASV, PBSZ, PROT, REST STREAM, SIZE, TVFS.
//     No MLSD/MLST and no UTF8 (names pass through as bytes). LIST shows
//     owner and group as "ftp ftp" (hide_ids), times in UTC, symlinks as
//     "name -> target".
//   - LIST of a directory it may not open answers 150 and 226 with one line
//     describing the directory itself, as "ls -ld" would; CWD, SIZE and
//     RETR there answer 550.
//   - Session processes make themselves session leaders, so they leave the
//     listener's process group: Stop finds them by parent pid.
//   - xferlog: the 8th field is the bytes really sent, for complete ("c")
//     and cut-short ("i") downloads alike; paths are chroot-relative, with
//     spaces written "_" and every non-ASCII byte "?" (the protocol log
//     writes "?" too). Anonymous users are logged by their password.
//   - TLS 1.3 by default (OpenSSL 3); Options.MaxTLS caps it through an
//     OpenSSL configuration file, since vsftpd has no setting for it.

// StartVsftpd starts vsftpd on 127.0.0.1 serving o.Stage (or a fresh
// default stage) and stops it when the test ends.
func StartVsftpd(t testing.TB, o Options) *Server {
	t.Helper()
	bin := need(t, "vsftpd", vsftpdBinary, "make deps (or: apt-get install vsftpd)")
	return newServer(t, "vsftpd", o, func(s *Server) error {
		s.ProtocolLog = filepath.Join(s.Dir, "vsftpd.log")
		s.protocolLine = vsftpdLine
		conf := filepath.Join(s.Dir, "vsftpd.conf")
		empty := filepath.Join(s.Dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(conf, []byte(vsftpdConfig(s, o)), 0o600); err != nil {
			return err
		}
		env, err := opensslConf(s.Dir, o.MaxTLS)
		if err != nil {
			return err
		}
		s.pathPrefix = []string{s.Stage.Root}
		s.newCmd = func() *exec.Cmd {
			cmd := exec.Command(bin, conf)
			cmd.Env = env
			return cmd
		}
		return nil
	})
}

func vsftpdBinary() (string, error) {
	return findBinary("vsftpd", "/usr/sbin/vsftpd")
}

func vsftpdConfig(s *Server, o Options) string {
	yes := func(b bool) string {
		if b {
			return "YES"
		}
		return "NO"
	}
	var c strings.Builder
	set := func(k string, v any) { fmt.Fprintf(&c, "%s=%v\n", k, v) }
	set("listen", "YES")
	set("listen_ipv6", "NO")
	set("listen_address", s.Host)
	set("listen_port", s.Port)
	set("background", "NO")
	set("max_clients", o.MaxClients)
	set("max_per_ip", o.MaxPerIP)
	// The sandbox kills sessions on syscalls newer libraries make.
	set("seccomp_sandbox", "NO")
	set("secure_chroot_dir", filepath.Join(s.Dir, "empty"))
	set("ftpd_banner", "mastfs test stage ("+s.Name+")")

	set("anonymous_enable", "YES")
	set("no_anon_password", "NO")
	set("anon_root", s.Stage.Root)
	set("ftp_username", "ftp")
	set("anon_world_readable_only", "YES")
	set("local_enable", "YES")
	set("chroot_local_user", "YES")
	set("local_root", s.Stage.Root)
	set("pam_service_name", "vsftpd")
	set("userlist_enable", "NO")
	set("write_enable", "NO")
	set("hide_ids", "YES")
	set("use_localtime", "NO")

	set("ssl_enable", "YES")
	set("implicit_ssl", yes(o.Implicit))
	set("allow_anon_ssl", "YES")
	set("force_anon_logins_ssl", "YES")
	set("force_anon_data_ssl", "YES")
	set("force_local_logins_ssl", "YES")
	set("force_local_data_ssl", "YES")
	set("require_ssl_reuse", "YES")
	set("require_cert", "NO")
	set("ssl_request_cert", "NO")
	set("ssl_ciphers", "HIGH")
	set("rsa_cert_file", filepath.Join(s.Dir, "cert.pem"))
	set("rsa_private_key_file", filepath.Join(s.Dir, "key.pem"))

	set("pasv_enable", "YES")
	set("port_enable", "NO")
	set("pasv_min_port", s.PasvMin)
	set("pasv_max_port", s.PasvMax)
	if o.PasvAddress != "" {
		set("pasv_address", o.PasvAddress)
		set("pasv_addr_resolve", "NO")
	}

	set("xferlog_enable", "YES")
	set("xferlog_std_format", "YES")
	set("xferlog_file", s.XferLog)
	set("dual_log_enable", "YES")
	set("vsftpd_log_file", s.ProtocolLog)
	set("log_ftp_protocol", "YES")
	return c.String()
}
