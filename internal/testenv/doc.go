// Package testenv starts the real servers that integration tests run
// against: InfluxDB OSS 1.8.10 (with Flux) and Mosquitto, each with a
// generated config, a fresh data directory and free loopback ports.
//
// Tests never mock these servers and never skip when one is missing: a
// missing binary fails the test with a message that says how to get it
// (`make tools` does both). Use Shared* for a server that the whole test
// binary shares (stopped by Main) and Start* for a private one that a fault
// test may kill, pause or restart.
package testenv
