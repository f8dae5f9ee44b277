package ftpstest

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"mastfs/ftps/ftpsd"
)

// certificate is the servers' self-signed certificate, made once per test
// binary. It names 127.0.0.1, and 127.0.0.3 where tests put a fault proxy.
type certificate struct {
	certPEM []byte
	keyPEM  []byte
	pool    *x509.CertPool
}

var testCertificate = sync.OnceValues(func() (*certificate, error) {
	certPEM, keyPEM, err := ftpsd.SelfSignedPEM([]string{Host, ProxyHost, "localhost"}, 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, errors.New("test certificate does not parse")
	}
	return &certificate{certPEM: certPEM, keyPEM: keyPEM, pool: pool}, nil
})

// write puts cert.pem and key.pem into dir.
func (c *certificate) write(dir string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, c.keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
