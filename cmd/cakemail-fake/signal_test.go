//go:build unix

package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStopsCleanlyOnSignals builds the command and stops it the way a shell or
// a container runtime does.
func TestStopsCleanlyOnSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "cakemail-fake")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		// Without it, a cold cache compiles the standard library a second time.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan())
			require.True(t, strings.HasPrefix(lines.Text(), "Fake Cakemail API listening at http://127.0.0.1:"), lines.Text())
			for lines.Scan() { // the banner ends with the trigger route
				if strings.Contains(lines.Text(), "_fake/trigger") {
					break
				}
			}

			require.NoError(t, cmd.Process.Signal(sig))
			var rest []string
			for lines.Scan() {
				rest = append(rest, lines.Text())
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				assert.NoError(t, err, "exit status 0")
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("still running 10 s after the signal")
			}
			assert.Equal(t, []string{"Stopping."}, rest)
		})
	}
}
