package recorder

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSenderReportsSyncAV sends video that arrives 150 ms later than the
// audio captured with it (a slower path): arrival times alone would put
// the video 150 ms late in the file; the sender reports, which share the
// publisher's clock, bring it back in sync, slewed, never stepping back.
func TestSenderReportsSyncAV(t *testing.T) {
	needFFprobe(t)
	video := packetize(t, "../testdata/sample.ivf", true, 0x1111, 1000, 5000, 160*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	path := record(t, video, audio, nil).path
	// The file starts at the first audio packet (capture + 10 ms). Video
	// frame i belongs at capture(i); before the first report (500 ms) it
	// sits 150 ms late, and the 5% slew works 150 ms off in 3 s of media.
	out := ffprobe(t, path, "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0")
	prev := -1.0
	for i, line := range strings.Fields(out) {
		var pts float64
		if _, err := fmt.Sscanf(line, "%g", &pts); err != nil {
			t.Fatal(err)
		}
		if pts <= prev {
			t.Errorf("video frame %d at %.3f s, not after %.3f s", i, pts, prev)
		}
		prev = pts
		off := time.Duration(pts*float64(time.Second)) - video.capture(i)
		switch {
		case i < 15 && (off < 140*time.Millisecond || off > 160*time.Millisecond):
			t.Errorf("frame %d %v off before the first report, want the arrival's 150 ms", i, off)
		case video.capture(i) >= 4*time.Second && off.Abs() > video.dur:
			t.Errorf("frame %d %v off after the reports, want within a frame (%v)", i, off, video.dur)
		}
	}
}
