// URIs of RTP header extensions (RFC 8285) that HelpCaster negotiates and
// pion does not name. Those pion names (audio level, transport-wide
// sequence numbers, MID, RID) are used as pion/sdp spells them.

package rtpcodec

// AbsCaptureTimeURI names the absolute capture time header extension: a
// 64-bit NTP timestamp of when the sender captured the packet's media.
// The SFU forwards it from publishers to subscribers unchanged, so that a
// receiver sharing the sender's clock (the load harness) measures the
// end-to-end latency of every packet.
const AbsCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
