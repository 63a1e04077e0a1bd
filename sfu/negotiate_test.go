package sfu

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// Codec negotiation between a publisher and its subscribers, and where a
// layer's packets may start a switch.

func h264Codec(pt uint8, fmtp string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		PayloadType:        webrtc.PayloadType(pt),
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp},
	}
}

func vp8Codec(pt uint8) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		PayloadType:        webrtc.PayloadType(pt),
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	}
}

const (
	fmtpCB1  = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" // constrained baseline
	fmtpCB0  = "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"
	fmtpB1   = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f" // baseline
	fmtpH1   = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032" // high
	fmtpCB1L = "packetization-mode=1;profile-level-id=42e034"                           // other level
)

func TestMatchCodec(t *testing.T) {
	opus := webrtc.RTPCodecParameters{
		PayloadType:        111,
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}
	for _, tc := range []struct {
		name    string
		src     webrtc.RTPCodecParameters
		offered []webrtc.RTPCodecParameters
		wantPT  uint8
		wantOK  bool
	}{
		{"VP8", vp8Codec(96), []webrtc.RTPCodecParameters{h264Codec(102, fmtpCB1), vp8Codec(120)}, 120, true},
		{"VP8 mime case", vp8Codec(96), []webrtc.RTPCodecParameters{{
			PayloadType: 98, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/vp8", ClockRate: 90000},
		}}, 98, true},
		{"VP8 fmtp ignored", vp8Codec(96), []webrtc.RTPCodecParameters{{
			PayloadType: 97, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, SDPFmtpLine: "max-fs=12288"},
		}}, 97, true},
		{"opus", opus, []webrtc.RTPCodecParameters{vp8Codec(96), opus}, 111, true},
		{"H264 exact among several", h264Codec(100, fmtpCB1),
			[]webrtc.RTPCodecParameters{h264Codec(102, fmtpCB0), h264Codec(104, fmtpH1), h264Codec(106, fmtpB1), h264Codec(108, fmtpCB1)}, 108, true},
		{"H264 42001f prefers 42001f", h264Codec(100, fmtpB1),
			[]webrtc.RTPCodecParameters{h264Codec(102, fmtpCB1), h264Codec(106, fmtpB1)}, 106, true},
		{"H264 640032 prefers 640032", h264Codec(100, fmtpH1),
			[]webrtc.RTPCodecParameters{h264Codec(102, fmtpCB1), h264Codec(104, fmtpB1), h264Codec(112, fmtpH1)}, 112, true},
		{"H264 packetization-mode 0", h264Codec(100, fmtpCB0),
			[]webrtc.RTPCodecParameters{h264Codec(102, fmtpCB1), h264Codec(104, fmtpCB0)}, 104, true},
		{"H264 level ignored", h264Codec(100, fmtpCB1),
			[]webrtc.RTPCodecParameters{h264Codec(102, fmtpCB0), h264Codec(103, fmtpCB1L)}, 103, true},
		// No exact match: the first H.264 is taken anyway.
		{"H264 loose fallback", h264Codec(100, fmtpCB1),
			[]webrtc.RTPCodecParameters{vp8Codec(96), h264Codec(104, fmtpH1), h264Codec(102, fmtpCB0)}, 104, true},
		{"VP8 not offered", vp8Codec(96), []webrtc.RTPCodecParameters{h264Codec(102, fmtpCB1), opus}, 0, false},
		{"H264 not offered", h264Codec(102, fmtpCB1), []webrtc.RTPCodecParameters{vp8Codec(96)}, 0, false},
		{"nothing offered", vp8Codec(96), nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := matchCodec(tc.src, tc.offered)
			if ok != tc.wantOK {
				t.Fatalf("matchCodec ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				if got.MimeType != "" || got.PayloadType != 0 {
					t.Fatalf("matchCodec = %+v with ok=false", got)
				}
				return
			}
			if uint8(got.PayloadType) != tc.wantPT {
				t.Fatalf("matchCodec chose PT %d (%s %q), want PT %d", got.PayloadType, got.MimeType, got.SDPFmtpLine, tc.wantPT)
			}
		})
	}
}

func TestFmtpEqual(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want bool
	}{
		{"same", fmtpCB1, fmtpCB1, true},
		{"order and other params", fmtpCB1, "profile-level-id=42e01f;packetization-mode=1", true},
		{"spaces", fmtpCB1, "packetization-mode=1; profile-level-id=42e01f", true},
		{"key case", fmtpCB1, "Packetization-Mode=1;PROFILE-LEVEL-ID=42e01f", true},
		{"hex case", fmtpCB1, "packetization-mode=1;profile-level-id=42E01F", true},
		{"level differs", fmtpCB1, fmtpCB1L, true},
		{"42e01f vs 42001f", fmtpCB1, fmtpB1, false},
		{"42e01f vs 640032", fmtpCB1, fmtpH1, false},
		{"42001f vs 640032", fmtpB1, fmtpH1, false},
		{"packetization-mode 0 vs 1", fmtpCB0, fmtpCB1, false},
		{"packetization-mode missing vs 1", "profile-level-id=42e01f", fmtpCB1, false},
		{"profile missing vs 640032", "packetization-mode=1", fmtpH1, false},
		{"both empty", "", "", true},
		// RFC 6184 section 8.1: packetization-mode absent means 0, and
		// profile-level-id absent means 42000a (baseline, level 1).
		{"packetization-mode absent = 0", "profile-level-id=42e01f", "packetization-mode=0;profile-level-id=42e01f", true},
		{"profile-level-id absent = 42000a", "packetization-mode=1", "packetization-mode=1;profile-level-id=42001f", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtpEqual(tc.a, tc.b); got != tc.want {
				t.Errorf("fmtpEqual(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := fmtpEqual(tc.b, tc.a); got != tc.want {
				t.Errorf("fmtpEqual(%q, %q) = %v, want %v (reversed)", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

// TestSwitchPoints: in H.264 only a picture's first packet can start a
// switch, so an IDR slice that follows the start of a picture (whose SPS
// packet was lost, or which began as a non-IDR slice) does not; in VP8 the
// keyframe's first packet says so itself; audio never switches.
func TestSwitchPoints(t *testing.T) {
	sps, idr, slice := []byte{0x67, 0x42}, []byte{0x65, 0x88}, []byte{0x41, 0x9a}
	h264 := switchPoints{video: true, mime: mimeH264}
	steps := []struct {
		name string
		ts   uint32
		p    []byte
		want bool
	}{
		{"SPS starting a picture", 1000, sps, true},
		{"IDR slice of the same picture", 1000, idr, false},
		{"non-IDR picture", 4000, slice, false},
		{"IDR slice after a non-IDR start of the same picture", 4000, idr, false},
		{"IDR slice starting a picture", 7000, idr, true},
		{"padding-only packet", 10000, nil, false},
	}
	for _, s := range steps {
		if got := h264.keyframe(s.ts, s.p); got != s.want {
			t.Errorf("H.264 %s: switch point %v, want %v", s.name, got, s.want)
		}
	}
	vp8 := switchPoints{video: true, vp8: true, mime: mimeVP8}
	if !vp8.keyframe(1, vp8Packet(1, true, -1, true)) {
		t.Error("VP8 keyframe's first packet is not a switch point")
	}
	if vp8.keyframe(1, vp8Packet(1, true, -1, false)) || vp8.keyframe(2, vp8Packet(2, true, -1, false)) {
		t.Error("a VP8 delta frame is a switch point")
	}
	audio := switchPoints{mime: mimeOpus}
	if audio.keyframe(1, []byte{0xfc, 0xff}) {
		t.Error("an audio packet is a switch point")
	}
}
