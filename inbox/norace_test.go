//go:build !race

package inbox_test

// raceEnabled is whether this test binary runs under the race detector.
const raceEnabled = false
