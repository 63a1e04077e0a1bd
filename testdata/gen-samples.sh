#!/usr/bin/env bash
# Regenerates the sample media used by the tests:
#   sample.ivf  VP8, 320x240, 30 fps, 5 s, testsrc pattern, ~250 kbit/s, keyframe every 30 frames
#   sim-q.ivf, sim-h.ivf, sim-f.ivf  VP8 simulcast layers for sfu/samples_test.go: 160x120 ~80 kbit/s,
#               320x240 ~250 kbit/s, 640x480 900k target (~650 kbit/s actual), 30 fps, 5 s, keyframe every 15 frames
#   sample.h264 H.264 constrained baseline (Annex B), 320x240, 30 fps, 5 s, IDR every 30 frames
#   sample.ogg  Opus, 48 kHz mono, 5 s sine at 440 Hz, 20 ms frames, one packet per Ogg page
# Needs ffmpeg with libvpx, libx264 and libopus (Debian's ffmpeg 5.1 has both).
# Output is deterministic enough for tests but not byte-for-byte reproducible
# across ffmpeg versions; commit the regenerated files together.
set -euo pipefail

cd "$(dirname "$0")"

if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "gen-samples.sh: ffmpeg not found (apt-get install ffmpeg)" >&2
	exit 1
fi

ff=(ffmpeg -hide_banner -loglevel error -nostdin -y)

# VP8 in IVF. -auto-alt-ref 0 keeps every frame a displayable frame so the
# IVF frames map one-to-one onto video frames (what a WebRTC track sends).
"${ff[@]}" -f lavfi -i "testsrc=size=320x240:rate=30:duration=5" \
	-an -c:v libvpx -b:v 250k -minrate 250k -maxrate 250k -bufsize 250k \
	-g 30 -keyint_min 30 -auto-alt-ref 0 -deadline realtime -cpu-used 8 \
	-pix_fmt yuv420p -fflags +bitexact -flags +bitexact \
	-f ivf sample.ivf.tmp
mv sample.ivf.tmp sample.ivf

# Three simulcast layers of the same source for sfu/samples_test.go. A
# keyframe every 15 frames (0.5 s) so a layer switch, which waits for a
# keyframe of the new layer, happens soon; bitrates far enough apart that a
# link limit fits between the middle and the top layer.
vp8_layer() { # size bitrate output
	"${ff[@]}" -f lavfi -i "testsrc=size=$1:rate=30:duration=5" \
		-an -c:v libvpx -b:v "$2" -minrate "$2" -maxrate "$2" -bufsize "$2" \
		-g 15 -keyint_min 15 -auto-alt-ref 0 -deadline realtime -cpu-used 8 \
		-pix_fmt yuv420p -fflags +bitexact -flags +bitexact \
		-f ivf "$3.tmp"
	mv "$3.tmp" "$3"
}
vp8_layer 160x120 80k sim-q.ivf
vp8_layer 320x240 250k sim-h.ivf
vp8_layer 640x480 900k sim-f.ivf

# H.264 as an Annex B byte stream, constrained baseline (profile-level-id
# 42e01f, what browsers offer first), no B-frames, an IDR with SPS/PPS every
# 30 frames, one slice per frame.
"${ff[@]}" -f lavfi -i "testsrc=size=320x240:rate=30:duration=5" \
	-an -c:v libx264 -profile:v baseline -level 3.1 -pix_fmt yuv420p -bf 0 \
	-x264-params "keyint=30:min-keyint=30:scenecut=0:slices=1:repeat-headers=1" \
	-b:v 250k -maxrate 250k -bufsize 250k -fflags +bitexact -flags +bitexact \
	-f h264 sample.h264.tmp
mv sample.h264.tmp sample.h264

# Opus in Ogg, 20 ms frames; page_duration is in microseconds, so each Ogg
# page holds one 20 ms packet.
"${ff[@]}" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=5" \
	-vn -ac 1 -ar 48000 -c:a libopus -b:a 32k -frame_duration 20 -application audio \
	-page_duration 20000 -fflags +bitexact -flags +bitexact -map_metadata -1 \
	-f ogg sample.ogg.tmp
mv sample.ogg.tmp sample.ogg

if command -v ffprobe >/dev/null 2>&1; then
	for f in sample.ivf sim-q.ivf sim-h.ivf sim-f.ivf sample.h264 sample.ogg; do
		ffprobe -v error -show_entries stream=codec_name,width,height,sample_rate,channels:format=duration,size \
			-of compact=p=0 "$f" | sed "s|^|$f: |"
	done
fi
