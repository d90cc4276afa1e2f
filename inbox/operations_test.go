package inbox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/pgtest"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

// The faults that operations bring, each injected for real.

// sendUntilAccepted delivers body to one of the inboxes in turn until one
// answers 2xx, as Cakemail retries, for at most a minute.
func sendUntilAccepted(t *testing.T, body []byte, inboxes ...*testInbox) {
	t.Helper()
	code, i := 0, 0
	require.Eventually(t, func() bool {
		code = inboxes[i%len(inboxes)].post(body, testSecret)
		i++
		return code != http.StatusServiceUnavailable
	}, time.Minute, 100*time.Millisecond, "no inbox stored the delivery in a minute")
	require.Equal(t, 2, code/100, "the delivery was answered %d", code)
}

// After Postgres restarts, each replica beats again as soon as it is back,
// and none takes the other for dead: slow handlers finish once.
func TestPostgresRestartKeepsReplicasApart(t *testing.T) {
	t.Parallel()
	server := pgtest.Start(t)
	url := server.URL(t)
	var running atomic.Int32
	slow := func() *webhooks.Router {
		r := webhooks.NewRouter()
		r.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			running.Add(1)
			defer running.Add(-1)
			select {
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			return recordEvent(ctx, e)
		})
		return r
	}
	replicas := []*testInbox{startInbox(t, url, slow()), startInbox(t, url, slow())}

	var bodies [][]byte
	for i := range 4 {
		body := payload("Email.Opened", fmt.Sprintf("before%d@example.com", i))
		bodies = append(bodies, body)
		sendUntilAccepted(t, body, replicas...)
	}
	require.Eventually(t, func() bool { return running.Load() > 0 }, 10*time.Second, 10*time.Millisecond,
		"no slow handler started")
	t.Logf("restarting Postgres with %d handlers running", running.Load())
	server.Restart(t)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		body := payload("Email.Opened", fmt.Sprintf("after%d@example.com", i))
		bodies = append(bodies, body)
		wg.Go(func() { sendUntilAccepted(t, body, replicas...) })
	}
	wg.Wait()
	replicas[0].waitCount(t, int64(len(bodies)), `SELECT count(*) FROM processed_events`)
	t.Logf("all %d deliveries processed %s after the restart", len(bodies), time.Since(start).Round(time.Millisecond))
	assert.Less(t, time.Since(start), 30*time.Second)
	for _, body := range bodies {
		assert.EqualValues(t, 1, replicas[0].count(t, countProcessed, sha(body)))
	}
	for i, r := range replicas {
		logs := r.logs.String()
		assert.NotContains(t, logs, "running again the jobs", "replica %d took a live replica for dead", i)
		assert.NotContains(t, logs, "handed to another process", "replica %d", i)
	}
}

// Under a burst at full speed the write-ahead log stays bounded.
func TestSQLiteWriteAheadLogStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a burst of 2,560 deliveries of 16 KB")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "inbox.db")
	ti := startInbox(t, "sqlite://"+path, nil)
	var largest int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if fi, err := os.Stat(path + "-wal"); err == nil {
				largest = max(largest, fi.Size())
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	// 16 KB bodies: each write of a job rewrites its row, so the log takes
	// over 100 MB in all, and grows past 64 MiB unless checkpoints catch up.
	big := strings.Repeat("x", 16<<10)
	for s := range 16 {
		wg.Go(func() {
			for i := range 160 {
				body := []byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{"email":"w%d-%d@example.com","pad":%q}}`,
					time.Now().Unix(), s, i, big))
				assert.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
			}
		})
	}
	wg.Wait()
	ti.waitCount(t, 2560, `SELECT count(*) FROM processed_events`)
	close(stop)
	<-done
	t.Logf("largest write-ahead log: %.1f MiB", float64(largest)/(1<<20))
	assert.Less(t, largest, int64(64<<20))
}

// A full disk: deliveries get 503 and the health check says so; once space
// is freed the same process recovers on its own, and nothing acknowledged
// is lost or applied twice.
func TestFullDiskRefusesThenRecoversOnItsOwn(t *testing.T) {
	t.Parallel()
	mount := loopMount(t, 48)
	ti := startInbox(t, "sqlite://"+filepath.Join(mount, "inbox.db"), nil)

	var acked [][]byte
	var mu sync.Mutex
	send := func(prefix string, n int) (refused int) {
		for i := range n {
			body := payload("Email.Opened", fmt.Sprintf("%s%d@example.com", prefix, i))
			switch code := ti.post(body, testSecret); code {
			case http.StatusAccepted:
				mu.Lock()
				acked = append(acked, body)
				mu.Unlock()
			case http.StatusServiceUnavailable:
				refused++
			default:
				t.Errorf("delivery answered %d", code)
			}
		}
		return refused
	}
	require.Zero(t, send("before", 50))

	// Fill the disk to the brim.
	filler := filepath.Join(mount, "filler")
	fillDisk(t, filler)
	refused, round := 0, 0
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		refused += send(fmt.Sprintf("full%d-", round), 20)
		round++
		assert.Positive(c, refused, "deliveries refused")
		assert.Equal(c, http.StatusServiceUnavailable, ti.get("/healthz").Code, "health")
	}, 30*time.Second, 10*time.Millisecond, "a full disk never showed")
	t.Logf("disk full: %d deliveries refused, %d acknowledged in all; health: %s", refused, len(acked), strings.TrimSpace(ti.get("/healthz").Body.String()))

	// Free it: the same process takes deliveries again within 30 s.
	require.NoError(t, os.Remove(filler))
	freed := time.Now()
	round = 0
	require.Eventually(t, func() bool {
		round++
		return send(fmt.Sprintf("after%d-", round), 1) == 0
	}, 30*time.Second, 200*time.Millisecond, "no delivery was stored in the 30 s after space was freed")
	t.Logf("storing again %s after space was freed", time.Since(freed).Round(time.Millisecond))
	ti.waitCount(t, int64(len(acked)), `SELECT count(*) FROM processed_events`)
	for _, body := range acked {
		assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)), "lost or applied twice")
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		w := ti.get("/healthz")
		assert.Equal(c, http.StatusOK, w.Code, "still unhealthy: %s", w.Body)
	}, 10*time.Second, 100*time.Millisecond)
}

// On a frozen filesystem every write hangs in the kernel; the health check
// still answers at once, and says the inbox cannot store deliveries. The
// inbox runs in a process of its own, as in production: a thread caught in
// a write on the frozen filesystem must not be able to stop the test from
// thawing it.
func TestHealthAnswersAtOnceOnAFrozenFilesystem(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		// A write to SQLite's shared-memory index on a frozen filesystem
		// blocks its thread in a page fault, where no signal reaches it, and
		// a garbage collection waits for every thread: the race detector's
		// runtime collects within seconds, so the whole process stops.
		t.Skip("the race detector's collections would wait on the write stuck in the frozen filesystem; scripts/test.sh runs this without it")
	}
	if _, err := exec.LookPath("fsfreeze"); err != nil {
		testutil.SkipOrFailInCI(t, "no fsfreeze to freeze a filesystem with")
	}
	mount := loopMount(t, 32)
	url := startServingProcess(t, "sqlite://"+filepath.Join(mount, "inbox.db"))
	client := &http.Client{Timeout: time.Second} // the health check's own timeout, as a prober sets it
	health := func() (int, string, error) {
		resp, err := client.Get(url + "/healthz")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	code, _, err := health()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)

	if out, err := exec.Command("fsfreeze", "-f", mount).CombinedOutput(); err != nil {
		testutil.SkipOrFailInCI(t, "cannot freeze the filesystem here: %v: %s", err, out)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			out, err := exec.Command("fsfreeze", "-u", mount).CombinedOutput()
			require.NoError(t, err, "%s", out)
		}
	}
	defer thaw()
	// A delivery now hangs in a write: it must not hold the health check up.
	go func() {
		body := payload("Email.Opened", "frozen@example.com")
		req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/cakemail", strings.NewReader(string(body)))
		req.Header.Set("X-Signature", webhooks.Sign(body, testSecret))
		if resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req); err == nil {
			resp.Body.Close()
		}
	}()

	var frozen string
	require.Eventually(t, func() bool {
		var code int
		code, frozen, err = health()
		return err != nil || code == http.StatusServiceUnavailable
	}, 10*time.Second, 100*time.Millisecond, "healthy 10 s into a frozen filesystem")
	require.NoError(t, err, "the health check did not answer within its timeout")
	t.Logf("frozen: %s", frozen)
	thaw()
	require.Eventually(t, func() bool {
		code, _, err := health()
		return err == nil && code == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond, "still unhealthy 10 s after the thaw")
}
