package inbox_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
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

// Settings of a serving process:
//   - servingRouterEnv names the router it runs, one of servingRouters;
//     without it, recordingRouter;
//   - holdEnv makes recordingRouter keep its transaction for the duration
//     after its write, as slow work after writing would;
//   - workersEnv is its WithWorkers.
const (
	servingRouterEnv = "INBOX_TEST_SERVE_ROUTER"
	holdEnv          = "INBOX_TEST_HOLD_AFTER_WRITE"
	workersEnv       = "INBOX_TEST_WORKERS"
)

// servingRouters are the routers a serving process can run, by name; test
// files add theirs in init. Each is given the database URL.
var servingRouters = map[string]func(databaseURL string) *webhooks.Router{}

// servingProcess is this test binary run again as an inbox.
type servingProcess struct {
	url    string               // its base URL
	pid    int                  // for a test that signals it
	cmd    *exec.Cmd            // the process
	output *testutil.SyncBuffer // what it printed after "serving on"
	logs   *testutil.SyncBuffer // its log (standard error)
}

// startServingProcess runs this test binary again as an inbox serving
// databaseURL on a loopback port, and returns its base URL. The process is
// killed, by its PID, when t ends.
func startServingProcess(t *testing.T, databaseURL string) string {
	t.Helper()
	return startServer(t, databaseURL).url
}

// startServingProcessWith is startServingProcess with the router named
// router (servingRouters).
func startServingProcessWith(t *testing.T, databaseURL, router string) *servingProcess {
	t.Helper()
	return startServer(t, databaseURL, servingRouterEnv+"="+router)
}

// startServer is startServingProcess with the settings of env, and the
// process itself. It stops on SIGTERM as a service would: it stops the
// inbox, prints "stopped" and exits 0.
func startServer(t *testing.T, databaseURL string, env ...string) *servingProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), servingProcessEnv+"="+databaseURL), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &servingProcess{cmd: cmd, output: &testutil.SyncBuffer{}, logs: &testutil.SyncBuffer{}}
	cmd.Stderr = p.logs
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
					fmt.Fprintln(p.output, lines.Text())
				}
			}()
			p.url = "http://" + addr
			return p
		}
	}
	t.Fatalf("the serving process ended before serving: %v: %s", lines.Err(), p.logs)
	return nil
}

// serveForATest is the serving process: an inbox behind a verifier, until
// killed or sent SIGTERM.
func serveForATest(databaseURL string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
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
	if name := os.Getenv(servingRouterEnv); name != "" {
		newRouter, ok := servingRouters[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "no router named", name)
			os.Exit(1)
		}
		router = newRouter(databaseURL)
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
	go srv.Serve(ln)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(stopCtx)
	if err := ib.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("stopped")
}

// postTo signs body and posts it to a serving process.
func postTo(baseURL string, body []byte) (int, error) {
	code, _, err := postTimed(baseURL, body)
	return code, err
}

// postTimed is postTo, with how long the answer took.
func postTimed(baseURL string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, baseURL+"/webhooks/cakemail", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("X-Signature", webhooks.Sign(body, testSecret))
	start := time.Now()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// postedTo is postTo for a test whose every post must be answered.
func postedTo(t *testing.T, baseURL string, body []byte) int {
	t.Helper()
	code, _ := postTimedTo(t, baseURL, body)
	return code
}

// postTimedTo is postTimed for a test whose every post must be answered.
func postTimedTo(t *testing.T, baseURL string, body []byte) (int, time.Duration) {
	t.Helper()
	code, took, err := postTimed(baseURL, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, took
}
