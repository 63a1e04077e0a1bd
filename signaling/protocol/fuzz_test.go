package protocol

import (
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/helpcaster/helpcaster/internal/jsonkeys"
)

// FuzzDecode checks the properties the server relies on for any client input:
//   - Decode never panics;
//   - every error is a *Error with code bad_message or unsupported_version, and
//     becomes an error message that encodes, with a ref no longer than MaxIDLen;
//   - a message that decodes names no key twice (jsonkeys.Unique);
//   - a message that decodes re-encodes with Encode and decodes again to an
//     equal message (and the second encoding is byte-for-byte the first).
//
// Run: go test -run=^$ -fuzz=FuzzDecode -fuzztime=60s ./signaling/protocol
func FuzzDecode(f *testing.F) {
	// Seeds over 2 KiB (the limit cases) are left out: every mutation of a
	// 64 KiB seed costs as much as hundreds of small ones, and codec_test.go
	// covers the limits exactly.
	for _, c := range validClientMessages {
		if len(c.in) <= 2048 {
			f.Add([]byte(c.in))
		}
	}
	for _, c := range invalidClientMessages() {
		if len(c.in) <= 2048 {
			f.Add([]byte(c.in))
		}
	}
	for _, s := range []string{
		`{"v":1,"type":"chat","text":"\u00e9\ud83d\ude00\ufffd"}`,
		`{"V":1,"TYPE":"hangup","Id":"x"}`,
		`{"v":1,"type":"chat","text":"a","text":"b"}`,
		`{"v":1,"type":"chat","text":"hi","type":"hangup"}`,
		`{"v":1,"type":"chat","text":"hi","Type":"hangup"}`,
		`{"v":1,"type":"candidate","pc":"sub","candidate":{"candidate":"","sdpMid":"","sdpMLineIndex":0,"usernameFragment":""}}`,
		`{"v":1,"type":"hangup","position":0,"ts":0,"from":null,"limits":null,"peer":null,"iceServers":null}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if len(m.ID) > MaxIDLen {
			t.Fatalf("Decode returned an ID of %d bytes (limit %d)", len(m.ID), MaxIDLen)
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if pe.Code != CodeBadMessage && pe.Code != CodeUnsupportedVersion {
				t.Fatalf("error code %q; Decode may only return bad_message or unsupported_version", pe.Code)
			}
			em, eerr := Encode(ErrorMessage(err, m.ID))
			if eerr != nil {
				t.Fatalf("error message for %v does not encode: %v", err, eerr)
			}
			if !utf8.Valid(em) {
				t.Fatalf("error message %q is not valid UTF-8", em)
			}
			return
		}

		if m.V != Version {
			t.Fatalf("decoded message has v=%d", m.V)
		}
		if err := jsonkeys.Unique(data); err != nil {
			t.Fatalf("decoded a message that jsonkeys refuses: %v", err)
		}
		switch m.Type {
		case TypeJoin, TypeResume, TypeAvailable, TypeAway, TypeOffer, TypeAnswer, TypeCandidate, TypeChat, TypeHangup, TypeQuality, TypeAccept, TypeDecline, TypeMonitor, TypeRecording:
		default:
			t.Fatalf("decoded a message of type %q that clients may not send", m.Type)
		}

		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v (first decode: %+v)", enc, err, m)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n first  %#v\n second %#v\n via %s", m, m2, enc)
		}
		enc2, err := Encode(m2)
		if err != nil || string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable: %s then %s (%v)", enc, enc2, err)
		}
	})
}
