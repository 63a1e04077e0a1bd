package wire

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// KeyCapture learns the SRTP keys of one peer connection from its DTLS
// handshake, through two hooks pion's SettingEngine offers: the key log
// (client random and master secret) and the ServerHello hook (server random,
// cipher suite and SRTP profile). From those it derives the keying material
// RFC 5764 exports, exactly as pion does for its own SRTP sessions. It sees
// the ServerHello only when this side is the DTLS server, which is why the
// SFU always takes that role.
//
// One KeyCapture belongs to one connection: set both hooks on that
// connection's own SettingEngine copy (Install).
type KeyCapture struct {
	mu           sync.Mutex
	clientRandom []byte
	master       []byte
	serverRandom []byte
	suite        dtls.CipherSuiteID
	profile      srtp.ProtectionProfile
	hello        bool
}

// Errors of Keys.
var (
	ErrNoKeys          = errors.New("wire: DTLS handshake not seen in full (not the DTLS server, or not finished)")
	ErrUnsupportedSRTP = errors.New("wire: SRTP protection profile not supported")
)

// Write takes the key log lines pion's DTLS writes ("CLIENT_RANDOM <client
// random> <master secret>", hex). Other lines are ignored.
func (k *KeyCapture) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[0]) != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(string(f[1]))
		ms, err2 := hex.DecodeString(string(f[2]))
		if err1 != nil || err2 != nil || len(cr) != handshake.RandomLength {
			continue
		}
		k.mu.Lock()
		k.clientRandom, k.master = cr, ms
		k.mu.Unlock()
	}
	return len(p), nil
}

// ServerHello is the ServerHello hook: it notes the server random, the
// chosen cipher suite and SRTP profile, and returns the message unchanged.
func (k *KeyCapture) ServerHello(m handshake.MessageServerHello) handshake.Message {
	sr := m.Random.MarshalFixed()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.serverRandom = append(k.serverRandom[:0], sr[:]...)
	k.hello = m.CipherSuiteID != nil
	if m.CipherSuiteID != nil {
		k.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	k.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) > 0 {
			k.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	return &m
}

// Keys returns the negotiated SRTP profile and this side's keys (the DTLS
// server's: local = server write key), once the handshake has finished.
func (k *KeyCapture) Keys() (srtp.ProtectionProfile, srtp.SessionKeys, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.hello || k.master == nil {
		return 0, srtp.SessionKeys{}, ErrNoKeys
	}
	switch k.profile {
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.ProtectionProfileAeadAes256Gcm, srtp.ProtectionProfileAes128CmHmacSha1_32:
	default:
		return 0, srtp.SessionKeys{}, fmt.Errorf("%w: %#x", ErrUnsupportedSRTP, uint16(k.profile))
	}
	cfg := srtp.Config{Profile: k.profile}
	exp := exporter{master: k.master, seed: append(append([]byte{}, k.clientRandom...), k.serverRandom...), hash: prfHash(k.suite)}
	if err := cfg.ExtractSessionKeysFromDTLS(exp, false); err != nil {
		return 0, srtp.SessionKeys{}, fmt.Errorf("wire: derive SRTP keys: %w", err)
	}
	return k.profile, cfg.Keys, nil
}

// prfHash is the TLS 1.2 PRF hash of a cipher suite: SHA-384 for the
// SHA384 suites, SHA-256 for every other suite pion's DTLS offers.
func prfHash(id dtls.CipherSuiteID) prf.HashFunc {
	switch id {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	}
	return sha256.New
}

// exporter is RFC 5705's exporter for DTLS 1.2 with an empty context:
// PRF(master secret, label + client random + server random).
type exporter struct {
	master, seed []byte
	hash         prf.HashFunc
}

func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("wire: exporter context not supported")
	}
	return prf.PHash(e.master, append([]byte(label), e.seed...), length, e.hash)
}
