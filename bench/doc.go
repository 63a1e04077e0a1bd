// Package bench is the load harness behind `helpcaster bench`: scenarios
// (support, turn, broadcast, queue) of simulated customers, agents and
// supervisors (package client, pion WebRTC peers) against a deployment,
// the measurements their received streams give (package bench/rtpstat),
// the nodes' own metrics scraped over the run, and the reports (a table,
// JSON and a self-contained HTML page). See docs/bench.md.
//
// Its tests run short scenarios against a `helpcaster serve` process, so
// that neither the harness nor its tests import the SFU. The measurement
// test TestCallsCost drives the built binary too and skips unless
// HELPCASTER_BENCH=1 (the SFU's own, TestBroadcastCost, is in package sfu);
// docs/benchmarks.md has their commands.
package bench
