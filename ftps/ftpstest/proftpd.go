package ftpstest

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ProFTPD 1.3.8 with mod_tls (Debian 12's proftpd-core and
// proftpd-mod-crypto), unpacked by .ci/deps rather than installed (it
// conflicts with vsftpd), as these servers run it:
//   - Standalone, in the foreground (-n), from a configuration written here
//     with ModulePath into the unpacked tree; mod_tls is loaded from there.
//     AuthPAM off: the account logs in through /etc/shadow (mod_auth_unix).
//   - Anonymous sessions (<Anonymous>, "anonymous" aliased to "ftp") and
//     the account (DefaultRoot) are both chrooted to the stage.
//   - TLSRequired on: plain control and data connections are refused.
//     Data connections must resume the control connection's TLS session
//     (mod_tls's default). With TLSSessionTickets off (its default) a
//     TLS 1.2 client can only resume by session ID, which Go's client
//     never does: every data connection gets "425 Unable to build data
//     connection: Operation not permitted". TLS 1.3, or tickets on, work.
//   - <Limit MLSD> DenyAll (Options.RefuseMLSD) keeps MLSD in FEAT and
//     answers it "550 Unable to handle command".
//   - FEAT: AUTH TLS, CCC, CLNT, CSID, EPRT, EPSV, HOST, LANG, MDTM, MFF,
//     MFMT, MLST, PBSZ, PROT, RANG STREAM, REST STREAM, SIZE, SSCN, TVFS,
//     UTF8. LIST shows owner and group names and UTC times, symlinks as
//     "name -> target".
//   - LIST of a directory it may not open answers 226 with no data.
//   - Transfer log in wu-ftpd format with local paths; the command log
//     (ExtendedLog) holds every command, PASS written "PASS (hidden)".
//   - MaxClients and MaxClientsPerHost (Options.MaxClients, MaxPerIP) let
//     one more connection in and greet it 220; its PASS gets 530 "Sorry,
//     the maximum number of allowed clients (N) are already connected."
//   - Session processes are forked children of the listener.

// StartProFTPD starts ProFTPD on 127.0.0.1 serving o.Stage (or a fresh
// default stage) and stops it when the test ends.
func StartProFTPD(t testing.TB, o Options) *Server {
	t.Helper()
	bin := need(t, "proftpd", proFTPDBinary, "make deps")
	modules := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(bin))), "usr/lib/proftpd")
	if _, err := os.Stat(filepath.Join(modules, "mod_tls.so")); err != nil {
		missing(t, "proftpd's mod_tls.so: "+err.Error(), "make deps", false)
	}
	return newServer(t, "proftpd", o, func(s *Server) error {
		s.ProtocolLog = filepath.Join(s.Dir, "commands.log")
		s.protocolLine = commandLine
		s.Quirks = Quirks{
			TicketlessReuse: o.MaxTLS == tls.VersionTLS12 && !o.SessionTickets,
			MLSDRefused:     o.RefuseMLSD,
			CapAtLogin:      o.MaxClients > 0 || o.MaxPerIP > 0,
		}
		conf := filepath.Join(s.Dir, "proftpd.conf")
		text, err := proFTPDConfig(s, o, modules)
		if err != nil {
			return err
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return err
		}
		s.pathPrefix = []string{s.Stage.Root}
		s.newCmd = func() *exec.Cmd { return exec.Command(bin, "-n", "-c", conf) }
		return nil
	})
}

func proFTPDBinary() (string, error) {
	return findBinary("proftpd", unpackedPlaces("proftpd/usr/sbin/proftpd")...)
}

func proFTPDConfig(s *Server, o Options, modules string) (string, error) {
	protocols := "TLSv1.2 TLSv1.3"
	if o.MaxTLS != 0 {
		name, err := tlsVersionName(o.MaxTLS)
		if err != nil {
			return "", err
		}
		if o.MaxTLS == tls.VersionTLS12 {
			protocols = name
		}
	}
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	var c strings.Builder
	set := func(k string, v ...any) {
		c.WriteString(k)
		for _, x := range v {
			fmt.Fprintf(&c, " %v", x)
		}
		c.WriteString("\n")
	}
	quote := func(p string) string { return `"` + p + `"` }
	set("ServerType", "standalone")
	set("ServerName", quote("mastfs test stage"))
	set("ServerIdent", "on", quote("mastfs test stage ("+s.Name+")"))
	set("DefaultServer", "on")
	set("DefaultAddress", s.Host)
	set("SocketBindTight", "on")
	set("UseIPv6", "off")
	set("Port", s.Port)
	set("PassivePorts", s.PasvMin, s.PasvMax)
	if o.PasvAddress != "" {
		set("MasqueradeAddress", o.PasvAddress)
	}
	set("User", "ftp")
	set("Group", "ftp")
	set("MaxInstances", 500)
	if o.MaxClients > 0 {
		set("MaxClients", o.MaxClients)
	}
	if o.MaxPerIP > 0 {
		set("MaxClientsPerHost", o.MaxPerIP)
	}
	set("UseReverseDNS", "off")
	set("WtmpLog", "off")
	set("DelayEngine", "off") // mod_delay would slow each login on purpose
	set("ScoreboardFile", quote(filepath.Join(s.Dir, "proftpd.scoreboard")))
	set("PidFile", quote(filepath.Join(s.Dir, "proftpd.pid")))
	set("SystemLog", quote(filepath.Join(s.Dir, "system.log")))
	set("TransferLog", quote(s.XferLog))
	set("LogFormat", "commands", quote("%r"))
	set("ExtendedLog", quote(s.ProtocolLog), "ALL", "commands")

	set("AuthPAM", "off")
	set("AuthOrder", "mod_auth_unix.c")
	set("UseFtpUsers", "off")
	set("RequireValidShell", "off")
	set("DefaultRoot", quote(s.Stage.Root))
	set("AllowOverwrite", "off")
	set("TimesGMT", "on")

	set("ModulePath", quote(modules))
	set("LoadModule", "mod_tls.c")
	set("TLSEngine", "on")
	set("TLSLog", quote(filepath.Join(s.Dir, "tls.log")))
	set("TLSRequired", "on")
	set("TLSProtocol", protocols)
	set("TLSSessionTickets", onOff(o.SessionTickets))
	set("TLSECCertificateFile", quote(filepath.Join(s.Dir, "cert.pem")))
	set("TLSECCertificateKeyFile", quote(filepath.Join(s.Dir, "key.pem")))
	set("TLSVerifyClient", "off")
	set("TLSRenegotiate", "none")
	if o.Implicit {
		set("TLSOptions", "UseImplicitSSL")
	}

	limits := "<Limit WRITE SITE_CHMOD>\n  DenyAll\n</Limit>\n"
	if o.RefuseMLSD {
		limits += "<Limit MLSD>\n  DenyAll\n</Limit>\n"
	}
	c.WriteString(limits)
	set("<Anonymous", quote(s.Stage.Root)+">")
	set("  User", "ftp")
	set("  Group", "ftp")
	set("  UserAlias", "anonymous", "ftp")
	set("  RequireValidShell", "off")
	c.WriteString(limits)
	set("</Anonymous>")
	return c.String(), nil
}
