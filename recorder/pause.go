// Pausing: the spans of the call clock whose frames are not written, on
// the recording's goroutine (Pause and Resume reach it as control
// messages, which are never dropped).

package recorder

import "time"

// Span is a paused stretch of the call, on the call clock.
type Span struct{ Start, End time.Time }

// Pause stops writing from now (on the call clock) until Resume.
func (r *Recording) Pause() error { return r.control(ctlMsg{pause: true, at: r.now()}) }

// Resume writes again from now; video resumes at its next keyframe,
// which is asked for.
func (r *Recording) Resume() error { return r.control(ctlMsg{resume: true, at: r.now()}) }

// control hands m to the goroutine and waits for its answer.
func (r *Recording) control(m ctlMsg) error {
	m.reply = make(chan error, 1)
	select {
	case r.ctl <- m:
	case <-r.done:
		return ErrStopped
	}
	// Run may stop on a write error before it applies m: it then never
	// replies, and closes done.
	select {
	case err := <-m.reply:
		return err
	case <-r.done:
		return ErrStopped
	}
}

// control1 applies a control message on the goroutine and replies.
func (r *Recording) control1(m ctlMsg) error {
	switch {
	case m.pause:
		if r.pausing {
			m.reply <- ErrPaused
			return nil
		}
		r.pausing = true
		r.paused = append(r.paused, Span{Start: m.at})
	case m.resume:
		if !r.pausing {
			m.reply <- ErrNotPaused
			return nil
		}
		r.pausing = false
		r.paused[len(r.paused)-1].End = m.at
		for _, t := range r.snapshot() {
			t.st.dp.AskKeyframe() // video only; the paused span dropped frames
		}
	}
	if m.reply != nil {
		m.reply <- nil
	}
	return nil
}

// inPause reports whether a frame at wall falls in a paused span.
func (r *Recording) inPause(wall time.Time) bool {
	for _, s := range r.paused {
		if !wall.Before(s.Start) && (s.End.IsZero() || wall.Before(s.End)) {
			return true
		}
	}
	return false
}
