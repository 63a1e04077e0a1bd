package bwe

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// Test helpers that build transport-wide feedback with pion/rtcp, so the
// parser is checked against an independent encoder.

// status is one packet's entry in a feedback packet under construction.
type status struct {
	recv  bool
	delta int64 // receive delta in 250 µs ticks, for received packets
}

type chunkStyle int

const (
	styleAuto   chunkStyle = iota // run length for long runs, else the densest vector
	styleRun                      // run-length chunks only
	style1Bit                     // one-bit vectors where possible, else two-bit
	style2Bit                     // two-bit vectors only
	styleMaxRun                   // like styleRun, but runs of at most 3 (many chunks)
)

func symbolOf(s status) uint16 {
	switch {
	case !s.recv:
		return rtcp.TypeTCCPacketNotReceived
	case s.delta >= 0 && s.delta <= 255:
		return rtcp.TypeTCCPacketReceivedSmallDelta
	default:
		return rtcp.TypeTCCPacketReceivedLargeDelta
	}
}

// buildTWCC returns a marshalled feedback packet describing statuses,
// starting at sequence number base, with a 24-bit reference time ref.
func buildTWCC(tb testing.TB, base uint16, ref uint32, fbCount uint8, st []status, style chunkStyle) []byte {
	tb.Helper()
	p := buildTWCCStruct(base, ref, fbCount, st, style)
	b, err := p.Marshal()
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

func buildTWCCStruct(base uint16, ref uint32, fbCount uint8, st []status, style chunkStyle) *rtcp.TransportLayerCC {
	syms := make([]uint16, len(st))
	for i, s := range st {
		syms[i] = symbolOf(s)
	}
	p := &rtcp.TransportLayerCC{
		SenderSSRC:         1,
		MediaSSRC:          0x12345678,
		BaseSequenceNumber: base,
		PacketStatusCount:  uint16(len(st)),
		ReferenceTime:      ref & 0xffffff,
		FbPktCount:         fbCount,
	}
	for i := 0; i < len(syms); {
		run := 1
		for i+run < len(syms) && syms[i+run] == syms[i] && run < maxRunLength {
			run++
		}
		large := false
		for j := i; j < min(i+14, len(syms)); j++ {
			large = large || syms[j] == rtcp.TypeTCCPacketReceivedLargeDelta
		}
		switch {
		case style == styleRun || (style == styleAuto && run >= 14):
			p.PacketChunks = append(p.PacketChunks, &rtcp.RunLengthChunk{
				PacketStatusSymbol: syms[i], RunLength: uint16(run)})
			i += run
		case style == styleMaxRun:
			run = min(run, 3)
			p.PacketChunks = append(p.PacketChunks, &rtcp.RunLengthChunk{
				PacketStatusSymbol: syms[i], RunLength: uint16(run)})
			i += run
		case (style == styleAuto || style == style1Bit) && !large:
			list := make([]uint16, 14)
			copy(list, syms[i:min(i+14, len(syms))])
			p.PacketChunks = append(p.PacketChunks, &rtcp.StatusVectorChunk{
				Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: list})
			i += 14
		default:
			list := make([]uint16, 7)
			copy(list, syms[i:min(i+7, len(syms))])
			p.PacketChunks = append(p.PacketChunks, &rtcp.StatusVectorChunk{
				Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: list})
			i += 7
		}
	}
	for i, s := range st {
		if s.recv {
			p.RecvDeltas = append(p.RecvDeltas, &rtcp.RecvDelta{Type: syms[i], Delta: s.delta * 250})
		}
	}
	size := p.MarshalSize()
	p.Header = rtcp.Header{
		Padding: sizeUnpadded(p) != size,
		Count:   rtcp.FormatTCC,
		Type:    rtcp.TypeTransportSpecificFeedback,
		Length:  uint16(size/4 - 1),
	}
	return p
}

// sizeUnpadded is the marshalled size before padding to 32 bits.
func sizeUnpadded(p *rtcp.TransportLayerCC) int {
	n := 4 + 16 + 2*len(p.PacketChunks)
	for _, d := range p.RecvDeltas {
		if d.Type == rtcp.TypeTCCPacketReceivedSmallDelta {
			n++
		} else {
			n += 2
		}
	}
	return n
}

// parsed is what ParseFeedback reported, for comparisons.
type parsed struct {
	h      FeedbackHeader
	seqs   []uint16
	recv   []bool
	deltas []int64 // µs, received packets only
}

func parseAll(b []byte) (parsed, error) {
	var p parsed
	h, err := ParseFeedback(b, func(seq uint16, received bool, delta time.Duration) {
		p.seqs = append(p.seqs, seq)
		p.recv = append(p.recv, received)
		if received {
			p.deltas = append(p.deltas, delta.Microseconds())
		}
	})
	p.h = h
	return p, err
}

// pionStatuses expands pion's decoded chunks into per-packet received flags.
func pionStatuses(p *rtcp.TransportLayerCC) []bool {
	var out []bool
	left := int(p.PacketStatusCount)
	for _, c := range p.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			n := min(int(c.RunLength), left)
			for range n {
				out = append(out, c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived)
			}
			left -= n
		case *rtcp.StatusVectorChunk:
			n := min(len(c.SymbolList), left)
			for _, s := range c.SymbolList[:n] {
				out = append(out, s != rtcp.TypeTCCPacketNotReceived)
			}
			left -= n
		}
	}
	return out
}
