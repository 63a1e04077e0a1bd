// Package bench is the load harness behind `helpcaster bench`: scenarios
// (support, turn, broadcast, queue) of simulated customers, agents and
// supervisors (package client, pion WebRTC peers) against a deployment,
// the measurements their received streams give (package bench/rtpstat),
// the nodes' own metrics scraped over the run, and the reports (a table,
// JSON and a self-contained HTML page). See docs/bench.md.
//
// Its tests run short scenarios against an in-process node. The older
// measurement tests here (TestCallsCost, TestBroadcastCost) drive the
// built binary or the SFU directly and skip unless HELPCASTER_BENCH=1;
// docs/benchmarks.md has their commands.
package bench
