// Package bench holds load measurements of a real helpcaster server that are
// run by hand, not by `make test`: each test skips unless HELPCASTER_BENCH=1.
// They start the built binary on loopback, drive it with Go participants
// (package client) and report what the server spent, from its own process
// CPU and its /metrics, as numbers for docs/benchmarks.md. They assert only
// that the scenario ran (media flowed), never timings. They stand in for
// `helpcaster bench` until that command exists.
package bench
