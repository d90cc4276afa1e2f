//go:build unix

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/internal/testutil"
)

// runMainEnv makes the test binary run the command itself, so that a test can
// signal a real process without building another binary (a cold build cache
// would otherwise compile the standard library a second time).
const runMainEnv = "CAKEMAIL_FAKE_TEST_RUN_MAIN"

func TestMain(m *testing.M) { testutil.RunTestsOrMain(m, runMainEnv, "cakemail-fake", main) }

// TestStopsCleanlyOnSignals runs the command as a process and stops it the way
// a shell or a container runtime does.
func TestStopsCleanlyOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), runMainEnv+"=1", "CAKEMAIL_ACCESS_TOKEN=", "CAKEMAIL_ACCOUNT_ID=")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan())
			require.True(t, strings.HasPrefix(lines.Text(), "Fake Cakemail API listening at http://127.0.0.1:"), lines.Text())
			for lines.Scan() { // the banner ends with the line that points the CLI at the fake
				if strings.HasPrefix(lines.Text(), "export CAKEMAIL_BASE_URL=") {
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
				cmd.Process.Kill() // only the process this test started
				t.Fatal("still running 10 s after the signal")
			}
			assert.Equal(t, []string{"Stopping."}, rest)
		})
	}
}
