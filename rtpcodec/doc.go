// Package rtpcodec holds facts about codecs and RTP that the SFU, the
// client, the load harness and the recorder share: where a keyframe starts
// for each video codec (IsKeyframe), the VP8 payload descriptor
// (ParseVP8Descriptor, VP8Descriptor, VP8KeyframeSize), and the URIs of the
// header extensions HelpCaster negotiates beyond those pion names
// (AbsCaptureTimeURI).
//
// It reads and writes packet bytes and keeps no state. It imports nothing
// of HelpCaster's (only the standard library), so that a client or a tool
// can know what a packet holds without depending on the SFU.
package rtpcodec
