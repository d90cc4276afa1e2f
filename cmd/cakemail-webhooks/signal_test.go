package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

// runMainEnv makes the test binary run the command itself, so that a test can
// signal a real process without building another binary.
const runMainEnv = "CAKEMAIL_WEBHOOKS_TEST_RUN_MAIN"

func TestMain(m *testing.M) { testutil.RunTestsOrMain(m, runMainEnv, "cakemail-webhooks", main) }

// TestListenStopsOnSignals runs listen as a process and stops it with SIGINT,
// then SIGTERM, as a terminal and a service manager do.
func TestListenStopsOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "listen", "-s", "signal-test-secret", "--addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			var stdout strings.Builder
			cmd.Stdout = &stdout
			require.NoError(t, cmd.Start())
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill() // only the process this test started
					cmd.Wait()
				}
			})

			lines := bufio.NewScanner(stderr)
			require.True(t, lines.Scan(), "listen prints where it listens")
			m := regexp.MustCompile(`Listening on (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(lines.Text())
			require.NotNil(t, m, lines.Text())

			body := []byte(`{"event":"Email.Opened","account_id":1,"created_on":1700000000,"data":{"n":1}}`)
			req, err := http.NewRequest(http.MethodPost, m[1]+"/hook", strings.NewReader(string(body)))
			require.NoError(t, err)
			req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(body, "signal-test-secret"))
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusNoContent, resp.StatusCode)

			require.NoError(t, cmd.Process.Signal(sig))
			var rest strings.Builder
			done := make(chan error, 1)
			go func() {
				for lines.Scan() { // the pipe is read to its end before Wait, as os/exec asks
					rest.WriteString(lines.Text() + "\n")
				}
				done <- cmd.Wait()
			}()
			select {
			case err := <-done:
				require.NoError(t, err, "exit code 0 after %s", sig)
			case <-time.After(10 * time.Second):
				t.Fatalf("listen did not stop on %s", sig)
			}
			assert.Equal(t, "Stopped.\n", rest.String())
			assert.JSONEq(t, `{"event":"Email.Opened","account":1,"created":"2023-11-14T22:13:20Z","data":{"n":1}}`, strings.TrimSpace(stdout.String()))
		})
	}
}
