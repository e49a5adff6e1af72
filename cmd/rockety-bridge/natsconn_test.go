package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
)

func startAuthServer(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	ns, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// selfSignedTLS writes a CA and a server certificate for 127.0.0.1 and
// returns the server's TLS config and the CA file.
func selfSignedTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile
}

func TestNATSAuthAndTLS(t *testing.T) {
	log := zap.NewNop()
	dir := t.TempDir()

	// User and password.
	ns := startAuthServer(t, server.Options{Username: "bridge", Password: "pw-secret"})
	if nc, err := connect(ns.ClientURL(), NATSConfig{User: "bridge", Password: "pw-secret"}, "t", log); err != nil || !waitConnected(nc) {
		t.Errorf("user/password: %v", err)
	}
	if nc, _ := connect(ns.ClientURL(), NATSConfig{User: "bridge", Password: "wrong"}, "t", log); nc != nil && waitConnected(nc) {
		t.Error("a wrong password connected")
	}

	// Token.
	ns = startAuthServer(t, server.Options{Authorization: "tok-secret"})
	if nc, err := connect(ns.ClientURL(), NATSConfig{Token: "tok-secret"}, "t", log); err != nil || !waitConnected(nc) {
		t.Errorf("token: %v", err)
	}

	// Nkey from a seed file.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns = startAuthServer(t, server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if nc, err := connect(ns.ClientURL(), NATSConfig{NKeySeedFile: seedFile}, "t", log); err != nil || !waitConnected(nc) {
		t.Errorf("nkey: %v", err)
	}
	if _, err := connect(ns.ClientURL(), NATSConfig{NKeySeedFile: filepath.Join(dir, "missing.nk")}, "t", log); err == nil ||
		!strings.Contains(err.Error(), "NATS_NKEY_SEED_FILE") {
		t.Errorf("missing seed file: %v", err)
	}

	// TLS with our CA.
	tlsConfig, caFile := selfSignedTLS(t)
	ns = startAuthServer(t, server.Options{TLSConfig: tlsConfig, TLS: true, TLSTimeout: 2})
	url := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)
	if nc, err := connect(url, NATSConfig{TLSCA: caFile}, "t", log); err != nil || !waitConnected(nc) {
		t.Errorf("TLS: %v", err)
	} else if !nc.TLSRequired() {
		t.Error("the connection is not TLS")
	}
	if nc, _ := connect(url, NATSConfig{}, "t", log); nc != nil && waitConnected(nc) {
		t.Error("TLS without our CA connected")
	}
}

// waitConnected reports whether a connection made with RetryOnFailedConnect
// gets connected within two seconds, and closes it.
func waitConnected(nc interface {
	IsConnected() bool
	Close()
}) bool {
	defer nc.Close()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if nc.IsConnected() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
