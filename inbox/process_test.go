package inbox_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// servingProcessEnv makes this test binary, run again, serve an inbox on the
// database it names instead of running tests.
const servingProcessEnv = "INBOX_TEST_SERVE_DATABASE"

// startServingProcess runs this test binary again as an inbox serving
// databaseURL on a loopback port, and returns its base URL. The process is
// killed, by its PID, when t ends.
func startServingProcess(t *testing.T, databaseURL string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), servingProcessEnv+"="+databaseURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "serving on "); ok {
			go func() {
				for lines.Scan() {
				}
			}()
			return "http://" + addr
		}
	}
	t.Fatalf("the serving process ended before serving: %v", lines.Err())
	return ""
}

// serveForATest is the serving process: an inbox behind a verifier, until killed.
func serveForATest(databaseURL string) {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ib, err := inbox.Open(ctx, databaseURL, recordingRouter(), inbox.WithLogger(logger), inbox.WithDDL(processedEvents))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := ib.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	v, err := webhooks.NewVerifier([]string{testSecret})
	if err != nil {
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", v.Middleware(ib))
	mux.Handle("GET /healthz", ib.HealthHandler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Println("serving on", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srv.Serve(ln)
}
