package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// selfSigned returns a certificate for 127.0.0.1 and its pool.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTLS allocates over TURN-over-TLS with REST credentials.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	port := freePort(t, "tcp")
	s, err := New(Config{ListenIP: "127.0.0.1", TLSPort: port, TLSCert: &cert, RelayIP: net.ParseIP("127.0.0.1"), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if urls := s.URLs("127.0.0.1"); len(urls) != 1 || urls[0] != "turns:127.0.0.1:"+strconv.Itoa(port)+"?transport=tcp" {
		t.Fatalf("URLs %v", urls)
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	user, pass := creds.Mint("tls", time.Now())
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: turn.NewSTUNConn(conn),
		Username: user, Password: pass, Realm: DefaultRealm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	relay.Close()
}
