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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

// servingProcessEnv makes this test binary, run again, serve an inbox on the
// database it names instead of running tests.
const servingProcessEnv = "INBOX_TEST_SERVE_DATABASE"

// startServingProcess runs this test binary again as an inbox serving
// databaseURL on a loopback port, and returns its base URL. The process is
// killed, by its PID, when t ends.
func startServingProcess(t *testing.T, databaseURL string) string {
	t.Helper()
	return startServer(t, databaseURL).url
}

// servingProcess is an inbox serving in a process of its own.
type servingProcess struct {
	url    string
	pid    int
	stderr *testutil.SyncBuffer // its log
}

// startServer is startServingProcess, with the settings of env (holdEnv)
// and the process's PID and log for a test that signals it.
func startServer(t *testing.T, databaseURL string, env ...string) *servingProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), servingProcessEnv+"="+databaseURL), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &servingProcess{stderr: &testutil.SyncBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT) // a process the test froze dies only once it runs
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "serving on "); ok {
			go func() {
				for lines.Scan() {
				}
			}()
			p.url = "http://" + addr
			return p
		}
	}
	t.Fatalf("the serving process ended before serving: %v: %s", lines.Err(), p.stderr)
	return nil
}

// Settings of a serving process. holdEnv makes its handler keep its
// transaction for the duration after its write, as slow work after writing
// would; workersEnv is its WithWorkers.
const (
	holdEnv    = "INBOX_TEST_HOLD_AFTER_WRITE"
	workersEnv = "INBOX_TEST_WORKERS"
)

// serveForATest is the serving process: an inbox behind a verifier, until killed.
func serveForATest(databaseURL string) {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	router := recordingRouter()
	if hold, err := time.ParseDuration(os.Getenv(holdEnv)); err == nil {
		router = webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			if err := recordEvent(ctx, e); err != nil {
				return err
			}
			time.Sleep(hold)
			return nil
		})
	}
	opts := []inbox.Option{inbox.WithLogger(logger), inbox.WithDDL(processedEvents)}
	if n, err := strconv.Atoi(os.Getenv(workersEnv)); err == nil {
		opts = append(opts, inbox.WithWorkers(n))
	}
	ib, err := inbox.Open(ctx, databaseURL, router, opts...)
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
