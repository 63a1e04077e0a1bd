package waittime

import (
	"math"
	"time"
)

// FallbackHandle is the handle time Estimate assumes when the window has no
// handle samples and Input.DefaultHandle is not positive.
const FallbackHandle = 5 * time.Minute

// MaxEstimate caps Estimate. Beyond a day a number means nothing to a
// customer, and the cap keeps absurd inputs from overflowing a Duration.
const MaxEstimate = 24 * time.Hour

const (
	// minObserved is how many answered customers the window must hold before
	// its answer rate is blended in at all.
	minObserved = 5
	// observedHalf is the sample count at which the observed rate gets half
	// of the weight (before the cap): weight = n / (n + observedHalf).
	observedHalf = 10
	// maxFasterWeight caps the observed rate's weight when it says slots
	// free faster than the capacity model does. Throughput never exceeds
	// capacity, so this is hard evidence that the model is too pessimistic;
	// the cap only keeps the model (which reacts at once to agents logging in
	// or out) in the blend.
	maxFasterWeight = 0.8
	// maxSlowerWeight caps the observed rate's weight when it says slots free
	// more slowly than the capacity model does. That is ambiguous: agents may
	// be slower than their handle times suggest (after-call work, breaks),
	// or they simply sat idle for lack of customers, in which case the
	// answer rate measures demand, not capacity. Idle time is the common
	// case, so this evidence only nudges the estimate.
	maxSlowerWeight = 0.25
	// handlePrior is how many samples DefaultHandle is worth when it is
	// blended with the window's mean handle time.
	handlePrior = 2
)

// Stats summarises a Window at one instant. See Window.Snapshot.
type Stats struct {
	// Answered is the number of waits recorded in the window.
	Answered int
	// AvgWait is the mean of those waits (0 if none).
	AvgWait time.Duration
	// Handled is the number of handle times recorded in the window.
	Handled int
	// AvgHandle is the mean of those handle times (0 if none).
	AvgHandle time.Duration
	// AnswerRate is customers answered per second over the window:
	// Answered divided by the effective span (the smaller of the span and
	// the time since the first sample ever seen, at least one second).
	AnswerRate float64
}

// Input is what is known when estimating one customer's wait.
type Input struct {
	// Position is the customer's 1-based place in the queue among the
	// customers it competes with. Position <= 0 means not waiting.
	Position int
	// Waited is how long the customer has already waited. The estimate
	// does not depend on it (see the package documentation).
	Waited time.Duration
	// Agents is the number of agents currently serving the queue and logged
	// in, available or busy. Each has capacity 1 unless Capacity says
	// otherwise.
	Agents int
	// Capacity is the total number of concurrent call slots of those agents.
	// 0 means Agents; a value below Agents is raised to Agents.
	Capacity int
	// Busy is the number of slots in use now.
	Busy int
	// Stats is the current snapshot of the queue's Window.
	Stats Stats
	// DefaultHandle is the handle time assumed when the window has no handle
	// samples (e.g. 5 minutes). Not positive means FallbackHandle.
	DefaultHandle time.Duration
}

// Estimate returns the expected remaining wait of the customer described by
// in, and whether it is known.
//
// known is false only when nobody can be expected to answer: no agent
// serves the queue (Agents <= 0) and the window shows no answers
// (AnswerRate == 0). The UI then says "waiting for an agent" instead of a
// number. A customer who is not waiting (Position <= 0) or who will take a
// free slot gets (0, true). Estimates are capped at MaxEstimate. Estimate
// never panics; nonsensical values (negative counts, NaN rate) are treated
// as zero.
func Estimate(in Input) (wait time.Duration, known bool) {
	k := in.Position
	if k <= 0 {
		return 0, true
	}

	slots := 0
	if in.Agents > 0 {
		slots = max(in.Capacity, in.Agents)
	}
	busy := min(max(in.Busy, 0), slots)
	free := slots - busy
	if k <= free {
		return 0, true
	}
	need := float64(k - free) // slot releases this customer must wait for

	observed := in.Stats.AnswerRate // answers per second
	if !(observed > 0) || math.IsInf(observed, 0) {
		observed = 0
	}

	// gap is the expected time, in seconds, between two slot releases.
	var gap float64
	switch {
	case slots == 0 && observed == 0:
		return 0, false
	case slots == 0:
		// Nobody is logged in, but the window says agents were answering:
		// assume they come back at the pace they kept.
		gap = 1 / observed
	default:
		gap = meanHandle(in).Seconds() / float64(slots)
		if observed > 0 {
			w := observedWeight(in.Stats.Answered, 1/observed < gap)
			gap = (1-w)*gap + w/observed
		}
	}

	secs := need * gap
	switch {
	case !(secs < MaxEstimate.Seconds()): // also catches NaN and +Inf
		return MaxEstimate, true
	case secs < 0: // cannot happen with the inputs sanitised above
		return 0, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

// meanHandle is the window's mean handle time shrunk towards DefaultHandle,
// which counts as handlePrior samples: one very long or very short call does
// not swing the estimate, and a full window barely notices the default.
func meanHandle(in Input) time.Duration {
	def := in.DefaultHandle
	if def <= 0 {
		def = FallbackHandle
	}
	n := in.Stats.Handled
	avg := in.Stats.AvgHandle
	if n <= 0 || avg < 0 {
		return def
	}
	mean := (float64(n)*avg.Seconds() + handlePrior*def.Seconds()) / (float64(n) + handlePrior)
	if !(mean < MaxEstimate.Seconds()) {
		return MaxEstimate
	}
	return time.Duration(mean * float64(time.Second))
}

// observedWeight is the weight given to the observed answer rate when the
// window holds n answered customers: nothing below minObserved, then
// n/(n+observedHalf), capped at maxFasterWeight if the observed rate is the
// faster one and at maxSlowerWeight otherwise.
func observedWeight(n int, faster bool) float64 {
	if n < minObserved {
		return 0
	}
	limit := maxSlowerWeight
	if faster {
		limit = maxFasterWeight
	}
	return min(limit, float64(n)/(float64(n)+observedHalf))
}

// Round rounds an estimate for display, so that small fluctuations do not
// change what the customer reads (and so do not cause a new push):
//
//   - d <= 0: 0 (not waiting, or nothing to wait for);
//   - 0 < d < 1 min: to the nearest 15 s, but at least 15 s, so a waiting
//     customer never reads "0 seconds" (everything below 7.5 s shows as 15 s);
//   - 1 min <= d < 10 min: to the nearest minute;
//   - d >= 10 min: to the nearest 5 minutes.
//
// Halves round away from zero, so 52.5 s shows as 1 min and 9 min 30 s as
// 10 min. Round is stateless: a value sitting right on a rounding boundary
// can still flip between two displays, which callers that push updates may
// want to damp by pushing only when the rounded value changes by more than
// one step.
func Round(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d < time.Minute:
		return max(d.Round(15*time.Second), 15*time.Second)
	case d < 10*time.Minute:
		return d.Round(time.Minute)
	default:
		return d.Round(5 * time.Minute)
	}
}
