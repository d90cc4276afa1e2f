//go:build race

package main

// raceEnabled: a command built for a test reuses the test's compiled packages
// only when it is built with the same -race setting.
const raceEnabled = true
