package rtpcodec

import (
	"fmt"
	"strings"
	"testing"
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
		keyframeCase{"opus", "audio/opus", []byte{0x10, 0x50}, false},
		keyframeCase{"VP9", "video/VP9", []byte{0x10, 0x50}, false},
		keyframeCase{"AV1", "video/AV1", []byte{0x65}, false},
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
