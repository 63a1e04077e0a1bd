package wire

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/srtp/v3"
)

// runHandshake runs a real DTLS handshake over loopback UDP between a server
// whose hooks feed a KeyCapture and a client, and returns the capture and
// the keys pion derives on the client's side (the reference).
func runHandshake(t *testing.T, profile dtls.SRTPProtectionProfile, suite dtls.CipherSuiteID) (*KeyCapture, srtp.SessionKeys) {
	t.Helper()
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	spc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cpc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	keys := &KeyCapture{}
	shared := func() []dtls.Option {
		return []dtls.Option{dtls.WithCertificates(cert), dtls.WithSRTPProtectionProfiles(profile),
			dtls.WithCipherSuites(suite), dtls.WithInsecureSkipVerify(true),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret)}
	}
	var sopts []dtls.ServerOption
	for _, o := range shared() {
		sopts = append(sopts, o)
	}
	sopts = append(sopts, dtls.WithKeyLogWriter(keys), dtls.WithServerHelloMessageHook(keys.ServerHello))
	var copts []dtls.ClientOption
	for _, o := range shared() {
		copts = append(copts, o)
	}
	server, err := dtls.ServerWithOptions(spc, cpc.LocalAddr(), sopts...)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dtls.ClientWithOptions(cpc, spc.LocalAddr(), copts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	state, ok := client.ConnectionState()
	if !ok {
		t.Fatal("no client connection state")
	}
	ref := srtp.Config{Profile: srtp.ProtectionProfile(profile)}
	if err := ref.ExtractSessionKeysFromDTLS(&state, true); err != nil {
		t.Fatal(err)
	}
	return keys, ref.Keys
}

// TestKeyCaptureMatchesPion: the keys learnt from the server's hooks are
// the ones pion exports on the other side, for each SRTP profile the SFU
// offers and for a SHA-256 and a SHA-384 cipher suite.
func TestKeyCaptureMatchesPion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile dtls.SRTPProtectionProfile
		suite   dtls.CipherSuiteID
	}{
		{"GCM, AES-128-GCM-SHA256", dtls.SRTP_AEAD_AES_128_GCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"CM-HMAC-SHA1-80, AES-128-GCM-SHA256", dtls.SRTP_AES128_CM_HMAC_SHA1_80, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"GCM, AES-256-GCM-SHA384", dtls.SRTP_AEAD_AES_128_GCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, client := runHandshake(t, tc.profile, tc.suite)
			profile, got, err := keys.Keys()
			if err != nil {
				t.Fatal(err)
			}
			if profile != srtp.ProtectionProfile(tc.profile) {
				t.Errorf("profile %v, want %v", profile, tc.profile)
			}
			// The server's local keys are the client's remote ones.
			if string(got.LocalMasterKey) != string(client.RemoteMasterKey) || string(got.LocalMasterSalt) != string(client.RemoteMasterSalt) ||
				string(got.RemoteMasterKey) != string(client.LocalMasterKey) || string(got.RemoteMasterSalt) != string(client.LocalMasterSalt) {
				t.Errorf("captured keys %x/%x %x/%x differ from pion's %x/%x %x/%x",
					got.LocalMasterKey, got.LocalMasterSalt, got.RemoteMasterKey, got.RemoteMasterSalt,
					client.RemoteMasterKey, client.RemoteMasterSalt, client.LocalMasterKey, client.LocalMasterSalt)
			}
		})
	}
}

// TestKeyCaptureIncomplete: without both hooks' halves there are no keys,
// and a key log line that is not one is ignored.
func TestKeyCaptureIncomplete(t *testing.T) {
	var k KeyCapture
	if _, _, err := k.Keys(); err == nil {
		t.Fatal("keys from an empty capture")
	}
	if _, err := k.Write([]byte("CLIENT_RANDOM zz 00\nSERVER_HANDSHAKE_TRAFFIC_SECRET 00 00\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Keys(); err == nil {
		t.Fatal("keys from malformed key log lines")
	}
}
