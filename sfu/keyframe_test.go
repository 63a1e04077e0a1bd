package sfu

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

type keyframeCase struct {
	name    string
	mime    string
	payload []byte
	want    bool
}

// VP8 payload descriptor first byte: X=0x80, N=0x20, S=0x10, PID=0x07.
// Extension byte: I=0x80, L=0x40, T=0x20, K=0x10. Picture id M bit=0x80.
// The VP8 payload header's first byte has P (inverse key frame) in bit 0.
// The bytes of optional fields are chosen so that reading one of them as
// the payload header gives the wrong answer.
var vp8Cases = []keyframeCase{
	{"no X key", mimeVP8, []byte{0x10, 0x9c, 0x01, 0x2a}, true},
	{"no X delta", mimeVP8, []byte{0x10, 0x31}, false},
	{"no X N bit key", mimeVP8, []byte{0x30, 0x50}, true},
	{"S=0 key header", mimeVP8, []byte{0x00, 0x50}, false},
	{"S=0 X", mimeVP8, []byte{0x80, 0x00, 0x50}, false},
	{"partition 1", mimeVP8, []byte{0x11, 0x50}, false},
	{"partition 7", mimeVP8, []byte{0x17, 0x50}, false},
	{"X no fields key", mimeVP8, []byte{0x90, 0x00, 0x50}, true},
	{"X no fields delta", mimeVP8, []byte{0x90, 0x00, 0x51}, false},
	{"X I 7-bit key", mimeVP8, []byte{0x90, 0x80, 0x05, 0x50}, true},
	{"X I 7-bit delta", mimeVP8, []byte{0x90, 0x80, 0x04, 0x51}, false},
	{"X I 15-bit key", mimeVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x50}, true},
	{"X I 15-bit delta", mimeVP8, []byte{0x90, 0x80, 0x80, 0x02, 0x51}, false},
	{"X I 15-bit key, low byte odd", mimeVP8, []byte{0x90, 0x80, 0xff, 0xff, 0x50}, true},
	{"X L key", mimeVP8, []byte{0x90, 0x40, 0x03, 0x50}, true},
	{"X L delta", mimeVP8, []byte{0x90, 0x40, 0x02, 0x51}, false},
	{"X T key", mimeVP8, []byte{0x90, 0x20, 0x41, 0x50}, true},
	{"X T delta", mimeVP8, []byte{0x90, 0x20, 0x40, 0x51}, false},
	{"X K delta", mimeVP8, []byte{0x90, 0x10, 0x02, 0x51}, false},
	{"X T and K share a byte", mimeVP8, []byte{0x90, 0x30, 0x02, 0x51}, false},
	{"X I(15) L T K key", mimeVP8, []byte{0x90, 0xf0, 0x81, 0x03, 0x05, 0xe1, 0x50}, true},
	{"X I(15) L T K delta", mimeVP8, []byte{0x90, 0xf0, 0x80, 0x02, 0x04, 0xe0, 0x51}, false},
	{"X I(7) L key", mimeVP8, []byte{0x90, 0xc0, 0x01, 0x01, 0x50}, true},
	{"X I(7) L delta", mimeVP8, []byte{0x90, 0xc0, 0x00, 0x00, 0x51}, false},
	{"empty", mimeVP8, nil, false},
	{"mime case-insensitive", "video/vp8", []byte{0x10, 0x50}, true},
}

// truncations returns every proper prefix of p as a case wanting false.
func truncations(name, mime string, p []byte) []keyframeCase {
	var out []keyframeCase
	for n := range len(p) {
		out = append(out, keyframeCase{fmt.Sprintf("%s truncated to %d", name, n), mime, p[:n], false})
	}
	return out
}

// H.264 NAL header: F=0x80, NRI=0x60, type=0x1f.
var h264Cases = []keyframeCase{
	{"IDR", mimeH264, []byte{0x65, 0x88, 0x84, 0x00}, true},
	{"IDR NRI 0", mimeH264, []byte{0x05, 0x88}, true},
	{"IDR header only", mimeH264, []byte{0x65}, true},
	{"SPS", mimeH264, []byte{0x67, 0x42, 0xc0, 0x1f}, true},
	{"PPS", mimeH264, []byte{0x68, 0xce, 0x3c, 0x80}, false},
	{"non-IDR slice", mimeH264, []byte{0x41, 0x9a, 0x02}, false},
	{"non-IDR slice NRI 0", mimeH264, []byte{0x01, 0x9a}, false},
	{"SEI", mimeH264, []byte{0x06, 0x05}, false},
	{"AUD", mimeH264, []byte{0x09, 0xf0}, false},
	{"STAP-A SPS PPS IDR", mimeH264, []byte{
		0x78,
		0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f,
		0x00, 0x02, 0x68, 0xce,
		0x00, 0x03, 0x65, 0x88, 0x84,
	}, true},
	{"STAP-A SEI then IDR", mimeH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88}, true},
	{"STAP-A PPS then SPS", mimeH264, []byte{0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x01, 0x67}, true},
	{"STAP-A SEI PPS only", mimeH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x68, 0xce}, false},
	{"STAP-A non-IDR slices", mimeH264, []byte{0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x41, 0x9b}, false},
	// A size that skips over bytes that look like an IDR header.
	{"STAP-A size skips IDR-looking bytes", mimeH264, []byte{0x78, 0x00, 0x03, 0x06, 0x65, 0x65, 0x00, 0x01, 0x41}, false},
	{"STAP-A last NAL ends at the end", mimeH264, []byte{0x78, 0x00, 0x01, 0x65}, true},
	{"STAP-A zero size", mimeH264, []byte{0x78, 0x00, 0x00, 0x65, 0x88}, false},
	{"STAP-A size beyond end", mimeH264, []byte{0x78, 0x00, 0x05, 0x65, 0x88}, false},
	{"STAP-A second size beyond end", mimeH264, []byte{0x78, 0x00, 0x01, 0x06, 0x00, 0x09, 0x65}, false},
	{"STAP-A huge size", mimeH264, []byte{0x78, 0xff, 0xff, 0x65}, false},
	{"STAP-A trailing byte", mimeH264, []byte{0x78, 0x00, 0x01, 0x06, 0x65}, false},
	{"STAP-A trailing size only", mimeH264, []byte{0x78, 0x00, 0x01, 0x06, 0x00, 0x01}, false},
	{"STAP-A header only", mimeH264, []byte{0x78}, false},
	{"FU-A start IDR", mimeH264, []byte{0x7c, 0x85, 0xb8, 0x00}, true},
	{"FU-A start SPS", mimeH264, []byte{0x7c, 0x87, 0x42}, true},
	{"FU-A start IDR header only", mimeH264, []byte{0x7c, 0x85}, true},
	{"FU-A middle IDR", mimeH264, []byte{0x7c, 0x05, 0xb8}, false},
	{"FU-A end IDR", mimeH264, []byte{0x7c, 0x45, 0xb8}, false},
	{"FU-A start non-IDR", mimeH264, []byte{0x7c, 0x81, 0x9a}, false},
	{"FU-A start PPS", mimeH264, []byte{0x7c, 0x88}, false},
	{"FU-A truncated", mimeH264, []byte{0x7c}, false},
	{"FU-B", mimeH264, []byte{0x7d, 0x85, 0x00, 0x01}, false},
	{"empty", mimeH264, nil, false},
	{"mime case-insensitive", "VIDEO/h264", []byte{0x65}, true},
}

func allKeyframeCases() []keyframeCase {
	cases := append([]keyframeCase{}, vp8Cases...)
	cases = append(cases, truncations("VP8 full", mimeVP8, []byte{0x90, 0xf0, 0x81, 0x02, 0x04, 0x06, 0x50})...)
	cases = append(cases, truncations("VP8 I 7-bit", mimeVP8, []byte{0x90, 0x80, 0x02, 0x50})...)
	cases = append(cases, truncations("VP8 no X", mimeVP8, []byte{0x10, 0x50})...)
	cases = append(cases, h264Cases...)
	cases = append(cases, truncations("FU-A", mimeH264, []byte{0x7c, 0x85})...)
	cases = append(cases, truncations("STAP-A", mimeH264, []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x01, 0x65})...)
	// Other codecs are never keyframes as far as the SFU knows.
	cases = append(cases,
		keyframeCase{"opus", mimeOpus, []byte{0x10, 0x50}, false},
		keyframeCase{"VP9", webrtc.MimeTypeVP9, []byte{0x10, 0x50}, false},
		keyframeCase{"AV1", webrtc.MimeTypeAV1, []byte{0x65}, false},
		keyframeCase{"no mime", "", []byte{0x65}, false},
	)
	return cases
}

func TestIsKeyframe(t *testing.T) {
	for _, tc := range allKeyframeCases() {
		t.Run(strings.ReplaceAll(tc.mime, "/", "_")+" "+tc.name, func(t *testing.T) {
			if got := IsKeyframe(tc.mime, tc.payload); got != tc.want {
				t.Errorf("IsKeyframe(%s, % x) = %v, want %v", tc.mime, tc.payload, got, tc.want)
			}
		})
	}
}

func FuzzKeyframe(f *testing.F) {
	for _, tc := range allKeyframeCases() {
		f.Add(tc.mime == mimeH264, tc.payload)
	}
	f.Fuzz(func(t *testing.T, h264 bool, p []byte) {
		mime := mimeVP8
		if h264 {
			mime = mimeH264
		}
		got := IsKeyframe(mime, p)
		if !got {
			return
		}
		// Cheap consistency checks on what was reported as a keyframe.
		switch {
		case len(p) == 0:
			t.Fatalf("%s: empty payload is a keyframe", mime)
		case !h264 && (p[0]&0x10 == 0 || p[0]&0x07 != 0):
			t.Fatalf("VP8 % x: keyframe without S=1, PID=0", p)
		case h264:
			switch p[0] & 0x1f {
			case naluIDR, naluSPS, naluSTAP, naluFUA:
			default:
				t.Fatalf("H264 % x: keyframe from NAL type %d", p, p[0]&0x1f)
			}
		}
	})
}

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
