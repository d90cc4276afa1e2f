//go:build !race

package main

// raceFlags builds the receiver binary the way this test binary was built, so
// a cold run compiles the standard library once, not twice.
var raceFlags []string
