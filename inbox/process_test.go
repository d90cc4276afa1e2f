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
	"os/signal"
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

// servingRouterEnv names the router the serving process runs, one of
// servingRouters; without it, recordingRouter.
const servingRouterEnv = "INBOX_TEST_SERVE_ROUTER"

// servingRouters are the routers a serving process can run, by name; test
// files add theirs in init. Each is given the database URL.
var servingRouters = map[string]func(databaseURL string) *webhooks.Router{}

// servingProcess is this test binary run again as an inbox.
type servingProcess struct {
	url    string               // its base URL
	cmd    *exec.Cmd            // the process
	output *testutil.SyncBuffer // what it printed after "serving on"
	logs   *testutil.SyncBuffer // its log (standard error)
}

// startServingProcess runs this test binary again as an inbox serving
// databaseURL on a loopback port, and returns its base URL. The process is
// killed, by its PID, when t ends.
func startServingProcess(t *testing.T, databaseURL string) string {
	t.Helper()
	return startServingProcessWith(t, databaseURL, "").url
}

// startServingProcessWith is startServingProcess with the router named
// router (servingRouters). The process stops on SIGTERM as a service
// would: it stops the inbox, prints "stopped" and exits 0.
func startServingProcessWith(t *testing.T, databaseURL, router string) *servingProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), servingProcessEnv+"="+databaseURL, servingRouterEnv+"="+router)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &testutil.SyncBuffer{}
	cmd.Stderr = logs
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
			output := &testutil.SyncBuffer{}
			go func() {
				for lines.Scan() {
					fmt.Fprintln(output, lines.Text())
				}
			}()
			return &servingProcess{url: "http://" + addr, cmd: cmd, output: output, logs: logs}
		}
	}
	t.Fatalf("the serving process ended before serving: %v", lines.Err())
	return nil
}

// serveForATest is the serving process: an inbox behind a verifier, until
// killed or sent SIGTERM.
func serveForATest(databaseURL string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	router := recordingRouter()
	if name := os.Getenv(servingRouterEnv); name != "" {
		newRouter, ok := servingRouters[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "no router named", name)
			os.Exit(1)
		}
		router = newRouter(databaseURL)
	}
	ib, err := inbox.Open(ctx, databaseURL, router, inbox.WithLogger(logger), inbox.WithDDL(processedEvents))
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
