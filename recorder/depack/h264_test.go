package depack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
)

// sampleAUs reads an Annex B file into access units (Annex B, one slice
// per picture) and says which hold an IDR slice.
func sampleAUs(t *testing.T, path string) (aus [][]byte, key []bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var au []byte
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		au = append(append(au, 0, 0, 0, 1), nal.Data...)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			aus = append(aus, au)
			key = append(key, nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr)
			au = nil
		}
	}
	return aus, key
}

// h264Packets packetizes access units with pion's payloader (300-byte
// MTU: FU-A for most pictures, SPS and PPS in a STAP-A), picture i at
// timestamp 3000*i; the result is per picture.
func h264Packets(aus [][]byte, seq uint16) [][]*rtp.Packet {
	p := rtp.NewPacketizerWithOptions(300, &codecs.H264Payloader{}, rtp.NewFixedSequencer(seq), 90000,
		rtp.WithSSRC(1), rtp.WithPayloadType(96), rtp.WithTimestamp(0))
	var out [][]*rtp.Packet
	for i, au := range aus {
		ps := p.Packetize(au, 3000)
		for _, pk := range ps {
			pk.Timestamp = uint32(3000 * i)
		}
		out = append(out, ps)
	}
	return out
}

// avccNALs splits AVCC data into NAL units; it fails the test on a bad
// length.
func avccNALs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("AVCC: %d bytes left, no length", len(b))
		}
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			t.Fatalf("AVCC: length %d of %d bytes", n, len(b)-4)
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// annexBNALs splits an access unit with 4-byte start codes.
func annexBNALs(au []byte) [][]byte {
	var out [][]byte
	for _, n := range bytes.Split(au, []byte{0, 0, 0, 1}) {
		if len(n) > 0 {
			out = append(out, n)
		}
	}
	return out
}

type h264Run struct {
	frames []Frame
	asks   int
	tr     *Track
}

func runH264(t *testing.T, ps []*rtp.Packet) h264Run {
	t.Helper()
	var r h264Run
	released := 0
	tr, err := New("video/H264", 90000, func(*rtp.Packet) { released++ }, func() { r.asks++ })
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	for _, p := range ps {
		tr.Push(p)
		for f, ok := tr.Pop(); ok; f, ok = tr.Pop() {
			r.frames = append(r.frames, f)
		}
	}
	r.frames = append(r.frames, tr.End()...)
	if released != len(ps) {
		t.Errorf("%d packets released, want all %d", released, len(ps))
	}
	return r
}

func TestH264Sample(t *testing.T) {
	aus, key := sampleAUs(t, "../../testdata/sample.h264")
	r := runH264(t, flat(h264Packets(aus, 65000)))
	if len(r.frames) != len(aus) || r.asks != 0 {
		t.Fatalf("%d frames, %d asks; want %d and none", len(r.frames), r.asks, len(aus))
	}
	for i, f := range r.frames {
		if f.Timestamp != uint32(3000*i) || f.Keyframe != key[i] {
			t.Fatalf("frame %d: ts %d key %v, want %d %v", i, f.Timestamp, f.Keyframe, 3000*i, key[i])
		}
		// The same NAL units, length-prefixed (pion's payloader leaves
		// out access unit delimiters and filler).
		var want [][]byte
		for _, n := range annexBNALs(aus[i]) {
			if typ := n[0] & 0x1f; typ != 9 && typ != 12 {
				want = append(want, n)
			}
		}
		got := avccNALs(t, f.Data)
		if len(got) != len(want) {
			t.Fatalf("frame %d: %d NAL units, want %d", i, len(got), len(want))
		}
		for j := range got {
			if !bytes.Equal(got[j], want[j]) {
				t.Fatalf("frame %d NAL %d differs", i, j)
			}
		}
		if !f.Keyframe {
			if f.Config != nil || f.Width != 0 {
				t.Fatalf("frame %d: inter frame with config or size", i)
			}
			continue
		}
		if f.Width != 320 || f.Height != 240 {
			t.Errorf("keyframe %d: %dx%d, want 320x240", i, f.Width, f.Height)
		}
		checkAVCConfig(t, f.Config, want[0], want[1])
	}
}

// checkAVCConfig checks an AVCDecoderConfigurationRecord holds sps and pps.
func checkAVCConfig(t *testing.T, c, sps, pps []byte) {
	t.Helper()
	want := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1, byte(len(sps) >> 8), byte(len(sps))}
	want = append(want, sps...)
	want = append(want, 1, byte(len(pps)>>8), byte(len(pps)))
	want = append(want, pps...)
	if !bytes.Equal(c, want) {
		t.Errorf("avcC % x\nwant % x", c, want)
	}
}

// The first keyframe's parameter sets (the STAP-A) are lost: its IDR
// cannot be written without them; the track waits for the next keyframe.
func TestH264KeyframeWithoutParameterSets(t *testing.T) {
	aus, key := sampleAUs(t, "../../testdata/sample.h264")
	if !key[0] || !key[30] {
		t.Fatal("sample.h264: want keyframes at 0 and 30")
	}
	pics := h264Packets(aus[:40], 100)
	if pics[0][0].Payload[0]&0x1f != 24 {
		t.Fatalf("first packet is NAL type %d, want a STAP-A", pics[0][0].Payload[0]&0x1f)
	}
	pics[0] = pics[0][1:]
	r := runH264(t, flat(pics))
	if len(r.frames) != 10 || r.frames[0].Timestamp != 3000*30 || !r.frames[0].Keyframe || r.asks != 1 {
		t.Errorf("%d frames from ts %d, %d asks; want 10 from the keyframe at 30 and one ask", len(r.frames), r.frames[0].Timestamp, r.asks)
	}
}

// slicePackets is a picture of two slices, each a single NAL unit packet:
// an IDR picture (after a STAP-A of sps and pps) or an inter one.
func slicePackets(seq uint16, ts uint32, idr bool, sps, pps []byte) []*rtp.Packet {
	typ := byte(0x41)
	if idr {
		typ = 0x65
	}
	var pls [][]byte
	if idr {
		stap := []byte{0x78}
		for _, n := range [][]byte{sps, pps} {
			stap = binary.BigEndian.AppendUint16(stap, uint16(len(n)))
			stap = append(stap, n...)
		}
		pls = append(pls, stap)
	}
	// first_mb_in_slice 0 (bit 1), then 40 (ue: 00000101001).
	pls = append(pls, []byte{typ, 0x88, 0x84, byte(ts)}, []byte{typ, 0x05, 0x20, byte(ts)})
	var ps []*rtp.Packet
	for i, pl := range pls {
		ps = append(ps, &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: seq + uint16(i),
			Timestamp: ts, Marker: i == len(pls)-1}, Payload: pl})
	}
	return ps
}

// A picture whose first slice is lost begins, as a sample, with a whole
// NAL unit: it must still be dropped, and the track wait for a keyframe,
// whether the loss is seen (mid-stream) or not (the track's first packets).
func TestH264LostFirstSlice(t *testing.T) {
	aus, _ := sampleAUs(t, "../../testdata/sample.h264")
	nals := annexBNALs(aus[0])
	sps, pps := nals[0], nals[1]
	for _, c := range []struct {
		name string
		lose func(pics [][]*rtp.Packet)
		key  int // a keyframe besides 0 and 20
		want []uint32
		asks int
	}{
		{"mid-stream", func(pics [][]*rtp.Packet) { pics[5] = pics[5][1:] }, 0, []uint32{0, 1, 2, 3, 4}, 1},
		// Another layer from picture 5 on, on a keyframe whose STAP-A
		// and first slice are lost: its second slice comes first, an
		// IDR slice, with parameter sets known from the first layer.
		{"new layer", func(pics [][]*rtp.Packet) {
			pics[5] = pics[5][2:]
			for _, ps := range pics[5:] {
				for _, p := range ps {
					p.SSRC = 2
				}
			}
		}, 5, []uint32{0, 1, 2, 3}, 1}, // picture 4 waited for a later packet of its layer
	} {
		t.Run(c.name, func(t *testing.T) {
			var pics [][]*rtp.Packet
			seq := uint16(10)
			for i := range 40 {
				ps := slicePackets(seq, uint32(3000*i), i == 0 || i == c.key || i == 20, sps, pps)
				seq += uint16(len(ps))
				pics = append(pics, ps)
			}
			c.lose(pics)
			r := runH264(t, flat(pics))
			var ts []uint32
			for _, f := range r.frames {
				ts = append(ts, f.Timestamp/3000)
				if n := len(avccNALs(t, f.Data)); n < 2 {
					t.Errorf("picture %d: %d NAL units", f.Timestamp/3000, n)
				}
			}
			want := c.want
			for i := uint32(20); i < 40; i++ {
				want = append(want, i)
			}
			if !equalU32(ts, want) || r.asks != c.asks {
				t.Errorf("pictures %v, %d asks; want %v and %d asks", ts, r.asks, want, c.asks)
			}
		})
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseSPS against what x264 was asked for: sizes that need cropping,
// high profiles with their chroma format and bit depth fields, and
// interlaced (field) coding.
func TestParseSPSFromEncoder(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg missing")
		}
		t.Skip("ffmpeg missing")
	}
	cases := []struct {
		size, profile, pixfmt string
		extra                 []string
		w, h, chroma, depth   int
	}{
		{"320x240", "baseline", "yuv420p", nil, 320, 240, 1, 8},
		{"1920x1080", "high", "yuv420p", nil, 1920, 1080, 1, 8},
		{"642x362", "main", "yuv420p", nil, 642, 362, 1, 8},
		{"330x186", "high444", "yuv444p", nil, 330, 186, 3, 8},
		{"322x182", "high422", "yuv422p", nil, 322, 182, 2, 8},
		{"640x360", "high", "yuv420p", []string{"-flags", "+ildct", "-x264-params", "interlaced=1"}, 640, 360, 1, 8},
		{"320x240", "high", "yuv420p", []string{"-x264-params", "cqm=jvt"}, 320, 240, 1, 8},
	}
	for _, c := range cases {
		t.Run(c.size+" "+c.profile, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.h264")
			args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
				"-i", "testsrc=size=" + c.size + ":rate=30:duration=0.1", "-c:v", "libx264",
				"-profile:v", c.profile, "-pix_fmt", c.pixfmt}
			args = append(append(args, c.extra...), "-f", "h264", path)
			if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, out)
			}
			aus, _ := sampleAUs(t, path)
			var sps []byte
			for _, n := range annexBNALs(aus[0]) {
				if n[0]&0x1f == nalSPS {
					sps = n
				}
			}
			info, ok := parseSPS(sps)
			if !ok || info.width != c.w || info.height != c.h || info.chromaFormat != c.chroma || info.bitDepthLuma != c.depth {
				t.Errorf("parseSPS = %+v %v, want %dx%d chroma %d depth %d", info, ok, c.w, c.h, c.chroma, c.depth)
			}
			if highProfile(sps[1]) {
				ps := h264Params{sps: sps, pps: []byte{0x68, 0xce}, info: info, ok: true}
				cfg := avcConfig(&ps)
				if tail := cfg[len(cfg)-4:]; tail[0] != 0xfc|byte(c.chroma) || tail[1] != 0xf8 || tail[2] != 0xf8 || tail[3] != 0 {
					t.Errorf("avcC high profile fields % x", tail)
				}
			}
		})
	}
}

func TestParseSPSMalformed(t *testing.T) {
	aus, _ := sampleAUs(t, "../../testdata/sample.h264")
	sps := annexBNALs(aus[0])[0]
	if _, ok := parseSPS(sps); !ok {
		t.Fatal("sample SPS not parsed")
	}
	for n := range len(sps) - 1 {
		// Truncated before the frame cropping flag: nothing to tell.
		if info, ok := parseSPS(sps[:n]); ok && n < 6 {
			t.Errorf("SPS truncated to %d bytes parsed: %+v", n, info)
		}
	}
	if _, ok := parseSPS([]byte{0x68, 0x42, 0x00, 0x1f, 0xff}); ok {
		t.Error("a PPS parsed as an SPS")
	}
	// 32 zero bits: an Exp-Golomb code too long.
	if _, ok := parseSPS([]byte{0x67, 0x42, 0x00, 0x1f, 0, 0, 0, 0, 0, 0}); ok {
		t.Error("SPS of zeros parsed")
	}
}

func TestUnescape(t *testing.T) {
	in := []byte{1, 0, 0, 3, 0, 0, 0, 3, 1, 0, 3, 0, 0, 3}
	want := []byte{1, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0}
	if got := unescape(in); !bytes.Equal(got, want) {
		t.Errorf("unescape % x = % x, want % x", in, got, want)
	}
}

// The FuzzSPS corpus entries are what their names say.
func TestSPSCorpus(t *testing.T) {
	for name, want := range map[string]spsInfo{
		"high-1080p":      {1920, 1080, 1, 8, 8},
		"high444-scaling": {330, 186, 3, 8, 8},
	} {
		b, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzSPS", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := parseSPS([]byte(s)); !ok || got != want {
			t.Errorf("%s: %+v %v, want %+v", name, got, ok, want)
		}
	}
}
