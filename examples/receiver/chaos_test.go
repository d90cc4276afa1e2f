package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/pgtest"
)

// The chaos tests prove the promise end to end: a sender that behaves like
// Cakemail (it retries every delivery until it gets a 2xx, through timeouts,
// 5xx and refused connections) against receiver processes SIGKILLed at random
// moments and restarted. At the end every delivery is in events, run once
// exactly once.

const (
	chaosKills      = 10
	chaosMaxSent    = 800 // deliveries, at most: the workers must drain them in chaosDrainLimit
	chaosSenders    = 16
	chaosPause      = 40 * time.Millisecond // each sender's pause between deliveries
	chaosTimeLimit  = 40 * time.Second      // a bound, not the expected time (10 to 20 s)
	chaosDrainLimit = 30 * time.Second      // a dead replica's running jobs wait for its heartbeat to age
)

func TestChaosSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("ten SIGKILLs under load: scripts/test.sh runs them, -short does not")
	}
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "receiver.db")
	runChaos(t, "sqlite://"+path, 1, func(ctx context.Context) (map[string]int, error) {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, `SELECT body_sha256, runs FROM events`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var sha string
			var n int
			if err := rows.Scan(&sha, &n); err != nil {
				return nil, err
			}
			out[sha] = n
		}
		return out, rows.Err()
	})
}

func TestChaosPostgresTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("ten SIGKILLs under load: scripts/test.sh runs them, -short does not")
	}
	t.Parallel()
	url := pgtest.URL(t)
	runChaos(t, url, 2, func(ctx context.Context) (map[string]int, error) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return nil, err
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT body_sha256, runs FROM events`)
		if err != nil {
			// The table appears with the first receiver's migration.
			return map[string]int{}, nil
		}
		out := map[string]int{}
		var sha string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&sha, &n}, func() error { out[sha] = n; return nil })
		return out, err
	})
}

// replica is one receiver process, restarted after each kill.
type replica struct {
	t       *testing.T
	bin     string
	env     []string
	dir     string
	port    int
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	status error
}

func (r *replica) start() {
	r.t.Helper()
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(r.t, err)
	cmd := exec.Command(r.bin)
	cmd.Dir = r.dir
	cmd.Env = append(append([]string{}, r.env...), "PORT="+strconv.Itoa(r.port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If this test binary dies, its receivers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(r.t, cmd.Start())
	logFile.Close()
	exited := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.status = err
		r.mu.Unlock()
		close(exited)
	}()
}

// waitHealthy waits, up to 10 s, until the replica answers its health check.
func (r *replica) waitHealthy(ctx context.Context) bool {
	client := &http.Client{Timeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(r.port) + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// kill SIGKILLs the process this test started, by its PID, and waits for it.
func (r *replica) kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// terminate sends SIGTERM and returns the exit status.
func (r *replica) terminate() error {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(shutdownTimeout + 5*time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("pid %d did not stop on SIGTERM", cmd.Process.Pid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func runChaos(t *testing.T, databaseURL string, replicas int, processed func(context.Context) (map[string]int, error)) {
	bin := receiverBinary(t)
	dir := t.TempDir()
	env := []string{"CAKEMAIL_WEBHOOK_SECRET=" + testSecret, "DATABASE_URL=" + databaseURL, "ADMIN_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH")}
	reps := make([]*replica, replicas)
	for i := range reps {
		port, err := pgtest.FreePort()
		require.NoError(t, err)
		reps[i] = &replica{t: t, bin: bin, env: env, dir: dir, port: port,
			logPath: filepath.Join(dir, fmt.Sprintf("replica%d.log", i))}
		reps[i].start()
	}
	defer func() {
		for _, r := range reps {
			r.kill() // only if a failure left it running
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), chaosTimeLimit)
	defer cancel()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	// The killer: chaosKills SIGKILLs, each of a serving replica at a random
	// moment under load, each followed by a restart.
	killing := make(chan struct{})
	go func() {
		defer close(killing)
		for range chaosKills {
			r := reps[rand.IntN(len(reps))]
			if !r.waitHealthy(ctx) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(20+rand.IntN(250)) * time.Millisecond):
			}
			r.kill()
			r.start()
		}
	}()

	// The sender: new deliveries for as long as the killer runs, each
	// retried until a 2xx.
	var (
		mu       sync.Mutex
		sent     = map[string]bool{}
		next     atomic.Int64
		attempts atomic.Int64
		refused  atomic.Int64
	)
	client := &http.Client{Timeout: time.Second}
	var wg sync.WaitGroup
	for range chaosSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-killing:
					return
				case <-time.After(chaosPause):
				}
				i := next.Add(1)
				if i > chaosMaxSent {
					return
				}
				body := []byte(fmt.Sprintf(`{"event":"email.opened","account_id":7,"created_on":%d,"data":{"email":"c%d@example.com","run":"%s"}}`, time.Now().Unix(), i, run))
				mu.Lock()
				sent[sha(body)] = true
				mu.Unlock()
				for ctx.Err() == nil {
					attempts.Add(1)
					r := reps[rand.IntN(len(reps))]
					code, err := deliver(ctx, client, r.port, body)
					if err == nil && code >= 200 && code <= 299 {
						break
					}
					if err == nil && code != http.StatusServiceUnavailable && code < 500 {
						t.Errorf("delivery %d: unexpected %d", i, code)
						return
					}
					refused.Add(1)
					time.Sleep(time.Duration(50+rand.IntN(50)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	<-killing
	require.NoError(t, ctx.Err(), "the deliveries were not all acknowledged in time")
	t.Logf("%d deliveries acknowledged in %d attempts (%d failed and retried) across %d kills",
		len(sent), attempts.Load(), refused.Load(), chaosKills)
	require.Greater(t, len(sent), chaosSenders, "too few deliveries to mean anything")

	// Every acknowledged delivery is processed, once, by the surviving processes.
	drainStart := time.Now()
	countProcessed := func() (map[string]int, error) {
		qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer qcancel()
		return processed(qctx)
	}
	// Not fatal: what is lost or doubled is counted below, either way.
	assert.Eventually(t, func() bool {
		got, err := countProcessed()
		return err == nil && len(got) >= len(sent)
	}, chaosDrainLimit, 100*time.Millisecond, "not every acknowledged delivery was processed in %s", chaosDrainLimit)
	got, err := countProcessed()
	require.NoError(t, err)
	var lost, doubled, unknown int
	for sha := range sent {
		switch n := got[sha]; {
		case n == 0:
			lost++
		case n > 1:
			doubled++
		}
	}
	for sha := range got {
		if !sent[sha] {
			unknown++
		}
	}
	assert.Zero(t, lost, "acknowledged deliveries never processed")
	assert.Zero(t, doubled, "deliveries processed more than once")
	assert.Zero(t, unknown, "processed deliveries nobody sent")

	t.Logf("all processed %s after the last acknowledgement", time.Since(drainStart).Round(time.Millisecond))
	for i, r := range reps {
		assert.True(t, r.waitHealthy(context.Background()), "replica %d is not serving", i)
		assert.NoError(t, r.terminate(), "replica %d did not exit 0 on SIGTERM", i)
		logs, err := os.ReadFile(r.logPath)
		require.NoError(t, err)
		assert.NotContains(t, string(logs), testSecret, "a secret reached the logs")
		if t.Failed() {
			t.Logf("replica %d log tail: %s", i, lastLines(logs, 15))
		}
		t.Logf("replica %d: %d rescues of a dead process's running jobs", i, strings.Count(string(logs), "running again the jobs"))
		for _, line := range strings.Split(strings.TrimSpace(string(logs)), "\n") {
			if !strings.HasPrefix(line, "{") {
				t.Errorf("replica %d wrote a line that is not JSON: %q", i, line)
				break
			}
		}
	}
}

func deliver(ctx context.Context, client *http.Client, port int, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://127.0.0.1:"+strconv.Itoa(port)+"/webhooks/cakemail", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Signature", webhooks.Sign(body, testSecret))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
