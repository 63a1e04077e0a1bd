// H.264 (RFC 6184): access units out of single NAL unit, STAP-A and FU-A
// packets as length-prefixed (AVCC) NAL units, what Matroska's
// V_MPEG4/ISO/AVC blocks hold; the parameter sets they carry, kept for the
// AVCDecoderConfigurationRecord (the track's CodecPrivate); and where a
// picture starts.

package depack

import (
	"encoding/binary"

	"github.com/pion/rtp/codecs"
)

// H.264 NAL unit types.
const (
	nalSlice = 1
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
	nalFUA   = 28
)

// h264Depacketizer is pion's H264Packet writing AVCC, started afresh at
// each FU-A's first fragment: pion's keeps the fragments it has until an
// end fragment, and a malformed sample (a start with no end) would
// otherwise put them in front of the next NAL unit.
type h264Depacketizer struct {
	p codecs.H264Packet
}

func newH264Depacketizer() *h264Depacketizer {
	return &h264Depacketizer{p: codecs.H264Packet{IsAVC: true}}
}

func (d *h264Depacketizer) Unmarshal(payload []byte) ([]byte, error) {
	if len(payload) >= 2 && payload[0]&0x1f == nalFUA && payload[1]&0x80 != 0 {
		d.p = codecs.H264Packet{IsAVC: true}
	}
	return d.p.Unmarshal(payload)
}

func (d *h264Depacketizer) IsPartitionHead(payload []byte) bool {
	return d.p.IsPartitionHead(payload)
}

func (d *h264Depacketizer) IsPartitionTail(marker bool, payload []byte) bool {
	return d.p.IsPartitionTail(marker, payload)
}

// h264Params holds the latest parameter sets a track carried.
type h264Params struct {
	sps, pps []byte
	info     spsInfo
	ok       bool // sps parsed
}

// h264AU is what an access unit (AVCC NAL units) says of itself.
type h264AU struct {
	start bool // its first slice is its picture's first (first_mb_in_slice 0)
	key   bool // it holds an IDR slice
	vcl   bool // it holds a slice at all
}

// scanH264 walks an access unit's AVCC NAL units, keeps its parameter sets
// in ps, and says what it is. A malformed length ends the walk: what
// follows is not read (the unit then fails the checks it did not reach).
func scanH264(au []byte, ps *h264Params) h264AU {
	var a h264AU
	for len(au) >= 4 {
		n := binary.BigEndian.Uint32(au)
		au = au[4:]
		if n == 0 || uint64(n) > uint64(len(au)) {
			break
		}
		nal := au[:n]
		au = au[n:]
		switch typ := nal[0] & 0x1f; typ {
		case nalSPS:
			if info, ok := parseSPS(nal); ok && len(nal) <= 0xffff {
				ps.sps, ps.info, ps.ok = append(ps.sps[:0], nal...), info, true
			}
		case nalPPS:
			if len(nal) > 1 && len(nal) <= 0xffff {
				ps.pps = append(ps.pps[:0], nal...)
			}
		case nalSlice, nalIDR:
			if !a.vcl {
				// first_mb_in_slice is the slice header's first field,
				// ue(v): 0 is the single bit 1.
				a.start = len(nal) > 1 && nal[1]&0x80 != 0
			}
			a.vcl = true
			a.key = a.key || typ == nalIDR
		}
	}
	return a
}

// avcConfig builds the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// section 5.2.4.1) of one SPS and one PPS, with 4-byte NAL unit lengths.
func avcConfig(ps *h264Params) []byte {
	sps, pps := ps.sps, ps.pps
	b := []byte{1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	b = append(b, pps...)
	if highProfile(sps[1]) {
		b = append(b, 0xfc|byte(ps.info.chromaFormat), 0xf8|byte(ps.info.bitDepthLuma-8),
			0xf8|byte(ps.info.bitDepthChroma-8), 0)
	}
	return b
}
