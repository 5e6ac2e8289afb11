// Package city is the simulated city behind firmware-sim: a deterministic
// model of express outlets (districts, sizes, green-packaging shares, daily
// arrival curves, collection rounds) and of their devices (recycling bins and
// parcel counters), the telemetry-v1 payloads those devices send, and the
// ground truth of what was sent, computed by the rules of metrics-v1.
//
// Everything is a function of the seed: the same seed gives the same outlets
// and, for the same sequence of report times, the same readings. Each device
// draws from its own random streams (one for its data, one for its faults),
// so enabling a fault on one device never changes another device's data,
// and enabling faults at all leaves the underlying arrivals unchanged.
//
// It lives outside firmware-sim so that other parts (the API's benchmarks,
// end-to-end tests) can build the same city and read the same truth.
package city
