// Package bwe is a send-side bandwidth estimator driven by transport-wide
// congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
// extensions-01), after the ideas of Google Congestion Control
// (draft-ietf-rmcat-gcc-02). It replaces pion/interceptor's GCC: it costs a
// few tens of nanoseconds per sent packet, allocates nothing after New and
// starts no goroutines.
//
// Use one Estimator per connection:
//
//	e := bwe.New(bwe.Config{Initial: 1_000_000})
//	seq := e.Sent(len(pkt), time.Now())   // per egress RTP packet; put seq in the TWCC header extension
//	err := e.Feedback(rtcpPkt, time.Now()) // per incoming TWCC feedback (PT=205, FMT=15)
//	target := e.Estimate()                 // bit/s, read as often as needed
//
// To find out whether the path could carry more than an application-limited
// connection sends, send short clusters of padding with
// e.SentProbe(len(pkt), time.Now(), clusterID) instead of Sent (see
// Probing).
//
// All methods are safe for concurrent use. Sent and Feedback share one
// mutex; Sent holds it for a handful of stores, Feedback for about 20 ns per
// reported packet. Estimate reads an atomic. Times are the caller's: pass
// time.Now() in production and synthetic times in tests.
//
// # Send history
//
// Sent numbers packets with a 16-bit transport-wide sequence number and
// records send time and size in a ring of 4096 slots indexed by the
// extended (int64) sequence number. Feedback sequence numbers are extended
// relative to the newest sent packet, so 16-bit wraparound needs no special
// case; statuses for packets that left the ring, were never sent, or were
// already reported received are ignored. A packet reported lost and later
// received counts as received. The 24-bit feedback reference time is
// unwrapped against the previous one, so both its wrap and its sign flip are
// harmless.
//
// # Delay-based detector
//
// Received packets are grouped by send time: a group spans 5 ms of send
// time, and a packet that arrives within 5 ms of the group's last arrival
// and no later relative to it than it was sent (a burst released by a queue
// or by a receiver that was not scheduled) joins the group too, up to a
// 100 ms burst. Between consecutive groups the delay variation is
// (arrival delta − send delta). Its running sum, exponentially smoothed
// (weight 0.9 on the old value), is regressed against arrival time over the
// last 20 groups (from 10 groups on at start-up). The slope times
// min(groups seen, 60) times 4 is the trend m, compared with an adaptive
// threshold γ (start 12.5 ms, clamped to 6..600 ms) that moves toward |m| at
// 0.01/ms when |m| > γ and 0.00018/ms when below, not at all when |m|
// exceeds γ by more than 15 ms. Overuse is signalled when m > γ for more than
// 10 ms of send time and more than one group while the slope is not
// decreasing; underuse when m < −γ. A single late group or a receiver stall
// moves the smoothed sum only briefly and is absorbed by the burst rule, so
// it does not trigger a decrease (see TestSimJitterNoFalseDips).
//
// # Rate control
//
// Each feedback that brings new arrivals updates an increase/hold state
// machine. Overuse sets the rate to 0.85 × the acknowledged bitrate (bytes
// reported received over the last second of receive time, 50 ms buckets,
// known after 200 ms), at most once per max(RTT, 100 ms) up to 500 ms
// unless the rate is above twice the acked bitrate, and records the acked
// bitrate as the congestion point (running mean, standard deviation bounded
// to 5–25 % of it). Underuse holds. Normal increases: multiplicatively by
// 8 % per second when the acked bitrate is not within 3 standard deviations
// of the congestion point (or above it, which forgets the point), otherwise
// additively by one average packet per (RTT + 100 ms); at least 4 kbit/s per
// second either way; time credited per step is capped at 1 s. An increase
// never takes the rate above max(1.5 × acked + 10 kbit/s, Initial), so an
// idle or application-limited connection does not race to Max, while one
// sending at its estimate keeps growing. The cap only limits increases: it
// never lowers a rate set by a probe. RTT is the smoothed time from
// sending the newest reported packet to receiving its feedback (so it
// includes the feedback interval).
//
// # Loss-based limit
//
// Packets reported lost and reported in total are counted over a window of
// at least 20 packets that closes at 100 packets or after 1 s. Loss above
// 10 % sets the limit to min(limit, estimate) × (1 − 0.5 × loss); loss below
// 2 % raises the limit by 5 % per second; in between the limit holds at the
// current estimate. The limit starts at Max, so it constrains nothing until
// loss is seen.
//
// # Probing
//
// The cap above keeps an application-limited connection's estimate within
// about 1.5× what it sends, so a subscriber held on a low layer could never
// show room for a higher one. The caller measures the path instead by
// sending a probe cluster: a short run of packets (typically padding, about
// 15 over 40 ms) paced at the rate in question, each sent with SentProbe and
// a cluster id that is positive and larger than any before. The history
// slot keeps a one-byte tag naming one of 8 cluster slots (so a slot stays
// 16 bytes); a ninth open cluster evicts the oldest, and a packet of a
// cluster already measured or evicted is an ordinary packet.
//
// A cluster is measured once, during the first Feedback after which at
// least 5 of its packets are reported received, at least 80 % of the
// packets sent in it are reported (received or lost), and no more are
// expected: a newer cluster has started or none of its packets was sent in
// the last 20 ms. Its send rate is its bytes except the last-sent packet's
// over its send span, its receive rate its received bytes except the
// first-arrived packet's over its arrival span; spans under 10 ms (send),
// empty (arrival) or over 1 s measure nothing. The result is the lower
// rate, and the path counts as saturated when the receive rate is under
// 0.9 × the send rate. Media queued between probe packets at the
// bottleneck slows their arrival, so a result is a lower bound.
//
// If the delay detector is not overusing (in this feedback) and under 10 %
// of the cluster's reported packets were lost, a result above the
// delay-based rate sets that rate to 0.95 × the result (at most Max) at
// once, and lifts the loss-based limit to it too unless the last loss
// window was above 10 %. Otherwise the result raises nothing. ProbeResult
// reports the last measured cluster. Probe packets are otherwise ordinary:
// they count toward the acked bitrate, the loss windows and the delay
// detector, so a probe well above the capacity builds a queue that the
// detector may then answer with a decrease; a caller should not keep
// probing far above a rate a saturated probe has measured.
//
// # Estimate
//
// Estimate = min(delay-based rate, loss-based limit), clamped to
// [Min, Max]; defaults are Initial 1 Mbit/s, Min 100 kbit/s, Max 20 Mbit/s.
//
// # Feedback parser
//
// ParseFeedback validates a feedback packet completely before reporting any
// packet status, handles run-length and one- and two-bit status vector
// chunks, one-byte and two-byte (signed) receive deltas, and padding, and
// rejects truncated packets, counts beyond the data, wrong version, type or
// format, a length field that disagrees with the buffer, bad padding and the
// reserved status symbol. Its deliberate differences from pion/rtcp are
// listed on ParseFeedback and checked by FuzzFeedback.
package bwe
