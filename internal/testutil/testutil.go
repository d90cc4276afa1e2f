// Package testutil holds the few helpers that tests in several of the
// project's packages need; it is internal, so it is no part of the SDK.
package testutil

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that goroutines may write to while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SkipOrFailInCI skips t, saying why, as t.Skipf does; under CI (the CI
// environment variable set, as .ci/run sets it) it fails t instead, so a
// test that cannot run there cannot pass unseen.
func SkipOrFailInCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("cannot run under CI (CI is set): "+format, args...)
	}
	t.Skipf(format, args...)
}

// RunTestsOrMain is a command's TestMain. With env set to "1" the test binary
// runs the command's main instead of its tests, as name, so that a test can
// start the command as a real process without building another binary: on a
// cold build cache that would compile the standard library a second time.
func RunTestsOrMain(m *testing.M, env, name string, main func()) {
	if os.Getenv(env) == "1" {
		os.Args = append([]string{name}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
