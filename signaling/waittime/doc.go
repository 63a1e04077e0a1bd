// Package waittime estimates how long a customer waiting in a support queue
// will still wait, so that the customer can be told "about 3 minutes", and
// keeps the sliding-window statistics the estimate is made from.
//
// # Statistics
//
// A Window per queue records, as they happen, each answered customer's wait
// (Window.AddWait, when the customer is answered) and each call's handle
// time (Window.AddHandle, when the call ends). Window.Snapshot summarises
// the samples of the last span into Stats: counts, mean wait, mean handle
// time and the answer rate. The Window never reads the clock and starts no
// goroutines; memory is bounded by its maxSamples.
//
// The span should hold a few dozen calls at normal load: about an hour for
// a handful of agents with calls of a few minutes, several hours for a
// single agent. A shorter window makes estimates noisy, and also
// pessimistic: a queue is long precisely when recent calls were long, which
// is when a short window's mean handle time is high too.
//
// # Estimator
//
// A customer at position k must wait until k call slots have become free
// for the k customers at the head of the queue, itself included. If f
// slots are free now, the first f positions are served at once (estimate
// 0) and the customer waits for k-f slot releases, so the estimate is
// (k-f)·g, where g is the expected time between two slot releases while
// every slot is busy. The capacity model gives g = H/s for s slots
// (Capacity, or Agents when Capacity is not set) and mean handle time H,
// the window's mean handle time shrunk towards DefaultHandle as if the
// default were two more samples. For an M/M/c queue this is exact: with s
// calls in progress and exponential handle times of mean H, calls end at
// rate s/H whatever they have lasted so far, so the k-th release comes
// after k·H/s on average; by the same memorylessness the time the customer
// has already waited does not change the remaining wait, and Input.Waited
// is not used. The answer rate a observed in the window gives a second
// gap, 1/a, blended in as g = (1-w)·H/s + w/a once the window holds at
// least 5 answers, with w = n/(n+10) for n answers, capped at 0.8 when the
// observed rate is the faster one and at 0.25 when it is the slower one.
// The asymmetry is because throughput never exceeds capacity: answers
// coming faster than the model predicts prove it pessimistic, whereas
// answers coming more slowly usually only mean that agents sat idle for
// lack of customers (at utilisation ρ the answer rate is ρ times the
// capacity, so trusting it fully would inflate estimates by 1/ρ); the small
// weight still lets persistent slowness the model cannot see, such as
// after-call work, lengthen the estimate a little. When no agent serves the
// queue, g = 1/a if the window saw answers (agents are assumed to come back
// at the pace they kept), and otherwise the wait is unknown and the UI says
// "waiting for an agent". Estimates are capped at MaxEstimate (a day).
//
// In the package's simulations of M/M/c queues (one to six slots,
// utilisation 0.8 to 0.95, a hundred simulated hours each) the mean estimate
// runs high by about a tenth of the mean actual wait (2-18% across the
// scenarios and seeds tried), and the mean absolute error is a third to
// three quarters of that of quoting the window's average wait.
//
// # Display
//
// Round turns an estimate into what the customer reads: steps of 15 s under
// a minute (never below 15 s while waiting), whole minutes under ten
// minutes, and steps of five minutes above, so that small fluctuations do
// not cause a new push to the customer.
package waittime
