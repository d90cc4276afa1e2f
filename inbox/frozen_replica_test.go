package inbox_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/internal/pgtest"
)

// One Postgres replica freezes (SIGSTOP, as a long pause of its VM would)
// with its batch transaction open, holding the rows of the jobs it completed
// in it; another is SIGKILLed. A live one runs every delivery of both while
// the first is still frozen, and once it wakes nothing is applied twice. Postgres ends the frozen replica's idle session after
// idle_in_transaction_session_timeout, set shorter here than the inbox's
// 20 s so that the test is short.
func TestFrozenReplicaIsRescuedAndAppliesNothingTwice(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t) + "&idle_in_transaction_session_timeout=6000"
	// Handlers that keep their transaction after writing, long enough that
	// deliveries queue for a turn however slowly the test sends them. Any
	// replica runs any job: the one to freeze takes 40, the one to kill the
	// rest, and the live one starts once they have.
	frozen := startServer(t, url, holdEnv+"=1s", workersEnv+"=40")

	var bodies [][]byte
	send := func(to *servingProcess, prefix string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			body := payload("Email.Opened", fmt.Sprintf("%s%d@example.com", prefix, i))
			bodies = append(bodies, body)
			wg.Go(func() {
				code, err := postTo(to.url, body)
				assert.NoError(t, err)
				assert.Equal(t, http.StatusAccepted, code)
			})
		}
		wg.Wait()
	}
	send(frozen, "frozen", 80)
	killed := startServer(t, url, holdEnv+"=3s")
	send(killed, "killed", 10)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)

	// Freeze it while its batch holds jobs locked, and the other one runs
	// jobs too. Any replica may run any job.
	var running, locked, killedRunning int64
	require.Eventually(t, func() bool {
		_, locked = runningOf(t, conn, frozen.pid)
		killedRunning, _ = runningOf(t, conn, killed.pid)
		if locked == 0 || killedRunning == 0 {
			return false
		}
		require.NoError(t, syscall.Kill(frozen.pid, syscall.SIGSTOP))
		if running, locked = runningOf(t, conn, frozen.pid); locked > 0 {
			return true
		}
		require.NoError(t, syscall.Kill(frozen.pid, syscall.SIGCONT)) // its batch committed just before: again
		return false
	}, 20*time.Second, 10*time.Millisecond, "the replica never held a batch open")
	frozeAt := time.Now()
	require.NoError(t, syscall.Kill(killed.pid, syscall.SIGKILL))
	t.Logf("frozen with %d jobs running, %d of them locked in its open batch; killed with %d running", running, locked, killedRunning)
	live := startServer(t, url, holdEnv+"=20ms")

	send(live, "live", 10) // the live replica keeps acknowledging
	processed := func() (rows, distinct int64) {
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT body_sha256) FROM processed_events`).Scan(&rows, &distinct))
		return rows, distinct
	}
	require.Eventually(t, func() bool {
		rows, _ := processed()
		return rows >= int64(len(bodies))
	}, 25*time.Second-time.Since(frozeAt), 50*time.Millisecond, "not every delivery processed 25 s into the freeze")
	t.Logf("every delivery processed %s after the freeze, the frozen replica still stopped", time.Since(frozeAt).Round(time.Millisecond))
	assert.Contains(t, live.logs.String(), fmt.Sprintf(`-%d-`, frozen.pid), "the live replica never named the frozen one")

	// It wakes: its batch's session is gone, and its jobs are not its own any more.
	require.NoError(t, syscall.Kill(frozen.pid, syscall.SIGCONT))
	require.Eventually(t, func() bool { return healthy(frozen.url) }, 15*time.Second, 50*time.Millisecond,
		"the woken replica never turned healthy")
	send(frozen, "woken", 10)
	var unfinished int64
	require.Eventually(t, func() bool {
		rows, _ := processed()
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&unfinished))
		return rows >= int64(len(bodies)) && unfinished == 0
	}, 15*time.Second, 50*time.Millisecond, "not every delivery processed and every job finished 15 s after the wake")
	rows, distinct := processed()
	assert.EqualValues(t, len(bodies), distinct, "lost")
	assert.EqualValues(t, len(bodies), rows, "applied twice")
	for _, line := range strings.Split(frozen.logs.String(), "\n") {
		if strings.Contains(line, "idle-in-transaction") {
			t.Logf("the woken replica: %s", line)
			break
		}
	}
}

// runningOf counts the running jobs whose latest attempt is the process
// pid's, and how many of them another session holds locked.
func runningOf(t *testing.T, conn *pgx.Conn, pid int) (running, locked int64) {
	t.Helper()
	ctx := context.Background()
	owner := fmt.Sprintf("%%-%d-____________", pid) // newClientID: inbox-host-pid-12 hex digits
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	const ofOwner = `FROM river_job WHERE state = 'running' AND attempted_by[array_upper(attempted_by, 1)] LIKE $1`
	var free int64
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) `+ofOwner, owner).Scan(&running))
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT id `+ofOwner+` FOR UPDATE SKIP LOCKED) free`, owner).Scan(&free))
	return running, running - free
}

// healthy reports whether a serving process's /healthz answers 200.
func healthy(baseURL string) bool {
	resp, err := (&http.Client{Timeout: time.Second}).Get(baseURL + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
