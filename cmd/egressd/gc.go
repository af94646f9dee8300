package main

import (
	"os"
	"runtime/debug"
)

// Garbage collector settings for the long-running commands (serve, worker),
// unless GOGC or GOMEMLIMIT say otherwise.
const (
	// gcPercent lets the heap grow to five times what is live between
	// collections instead of twice: a request allocates a lot and keeps
	// almost nothing, so collecting less often gives back about a tenth of
	// the CPU for some 15 MB (BENCHMARKS.md).
	gcPercent = 400
	// memoryLimit makes the collector work harder as the Go heap nears it,
	// so the larger growth never pushes the process past its memory budget.
	memoryLimit = 128 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
