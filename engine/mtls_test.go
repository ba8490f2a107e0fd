package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
)

// testCA issues certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key, PEM-encoded, for a server on
// 127.0.0.1 or for a client.
func (ca *testCA) issue(t *testing.T, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "amx test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestClientCertificates: with auth.client_ca_file, only clients with a
// certificate its CA signed get through the TLS handshake.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "client CA"), newTestCA(t, "other CA")
	certPEM, keyPEM := serverCA.issue(t, x509.ExtKeyUsageServerAuth)
	writeTestFile(t, dir, "cert.pem", string(certPEM))
	writeTestFile(t, dir, "key.pem", string(keyPEM))
	writeTestFile(t, dir, "clients.pem", string(clientCA.pem))
	src := rules.Source{File: writeTestFile(t, dir, "amx.yml", fmt.Sprintf(
		"tls_crt: %s/cert.pem\ntls_key: %s/key.pem\nauth:\n  client_ca_file: clients.pem\ncommands:\n  - cmd: 'true'\n", dir, dir))}
	cfg, err := rules.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, ServeOptions{Options: Options{Config: cfg, Rules: compile(t, cfg.Set),
		Log: slog.New(slog.DiscardHandler), Source: src}})
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	post := func(client *tls.Certificate) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if client == nil {
					return &tls.Certificate{}, nil
				}
				return client, nil
			}}}}
		defer c.CloseIdleConnections()
		resp, err := c.Post("https://"+addr+"/", "application/json", strings.NewReader(firing))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	pair := func(ca *testCA) *tls.Certificate {
		c, k := ca.issue(t, x509.ExtKeyUsageClientAuth)
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return &cert
	}
	if code, err := post(pair(clientCA)); err != nil || code != 200 {
		t.Errorf("a client the CA signed: %d %v", code, err)
	}
	for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA's": pair(otherCA)} {
		if code, err := post(cert); err == nil {
			t.Errorf("%s: answered %d, want a failed handshake", name, code)
		}
	}
}
