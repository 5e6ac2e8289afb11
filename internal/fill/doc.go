// Package fill predicts when recycling bins will be full: the model behind
// the collection list (GET /v1/collections, ops-v1).
//
// Each bin is judged from its own reports alone. Its daily fill curve (how
// many points an hour it gains at each hour of the day) is learned from the
// whole days before the day it is asked about (Learn); its current cycle
// (the reports since it was last emptied) says where it stands and whether
// today runs faster or slower than its usual day (Predict). The prediction
// walks the curve forward from the estimated level to the full threshold.
//
// Robust on purpose: an emptying (a drop that the next reports confirm) is
// never taken for a fill rate and starts a new cycle; a single reading far
// from both neighbours (a glitch of the level sensor) is left out; levels
// are medians of several readings, so sensor noise does not move the
// prediction much; a bin that does not fill has a rate near zero and no
// full time.
//
// How it was chosen, and how well it does on the simulated city: the
// project's docs/collections.md and docs/benchmarks.md.
package fill
