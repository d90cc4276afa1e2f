package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// No handler keeps the batch transaction, and on SQLite the database's one
// connection, longer than WithTxTimeout after its first statement.

// holder is a handler that writes, then keeps its transaction: until its
// context is cancelled, or, ignoring its context, until release is closed.
// Then it tries to write again, and reports that call's error on again.
type holder struct {
	ignoreContext bool
	attempts      int // it holds on attempts up to this one, and records the delivery on later ones
	held          chan struct{}
	release       chan struct{}
	again         chan error
}

func newHolder(ignoreContext bool, attempts int) *holder {
	return &holder{ignoreContext: ignoreContext, attempts: attempts,
		held: make(chan struct{}, 10), release: make(chan struct{}), again: make(chan error, 10)}
}

// router records every delivery, and holds for one to hold@example.com.
func (h *holder) router() *webhooks.Router {
	r := webhooks.NewRouter()
	r.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx)
		if emailOf(e) != "hold@example.com" || d.Attempt > h.attempts {
			return recordEvent(ctx, e)
		}
		if err := recordEvent(ctx, e); err != nil {
			return err
		}
		h.held <- struct{}{}
		if h.ignoreContext {
			<-h.release
		} else {
			<-ctx.Done()
		}
		_, err := d.Tx.Exec(context.WithoutCancel(ctx), `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, 'again', $2)`,
			d.BodySHA256, time.Now().UTC())
		h.again <- err
		if h.ignoreContext {
			return nil // as if all went well: its effects were rolled back all the same
		}
		return ctx.Err()
	})
	return r
}

// answers counts the answers to deliveries by latency.
type answers struct {
	mu      sync.Mutex
	bodies  [][]byte
	codes   map[int]int
	buckets [4]int // 202s within 100 ms, 1 s, 3 s, and slower
	slowest time.Duration
}

var bucketNames = [4]string{"<100ms", "<1s", "<3s", ">=3s"}

func (a *answers) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d deliveries: answers %v; 202s by latency:", len(a.bodies), a.codes)
	for i, n := range a.buckets {
		fmt.Fprintf(&b, " %s %d", bucketNames[i], n)
	}
	fmt.Fprintf(&b, "; slowest %s", a.slowest.Round(time.Millisecond))
	return b.String()
}

// acceptedWithin3s is the share of deliveries answered 202 within 3 s.
func (a *answers) acceptedWithin3s() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return float64(a.buckets[0]+a.buckets[1]+a.buckets[2]) / float64(len(a.bodies))
}

// sendPaced sends perSecond distinct deliveries a second for d, each from
// a goroutine of its own, so that one slow answer holds back no other, and
// counts the answers.
func sendPaced(ti *testInbox, prefix string, perSecond int, d time.Duration) *answers {
	a := &answers{codes: map[int]int{}}
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	for i := range int(d.Seconds() * float64(perSecond)) {
		<-tick.C
		body := payload("Email.Opened", fmt.Sprintf("%s%d@example.com", prefix, i))
		a.bodies = append(a.bodies, body)
		wg.Go(func() {
			start := time.Now()
			code := ti.post(body, testSecret)
			took := time.Since(start)
			a.mu.Lock()
			defer a.mu.Unlock()
			a.codes[code]++
			if code != http.StatusAccepted {
				return
			}
			a.slowest = max(a.slowest, took)
			switch {
			case took < 100*time.Millisecond:
				a.buckets[0]++
			case took < time.Second:
				a.buckets[1]++
			case took < 3*time.Second:
				a.buckets[2]++
			default:
				a.buckets[3]++
			}
		})
	}
	wg.Wait()
	return a
}

// watchHealth samples /healthz every 100 ms until stop is closed, and
// returns the answers that were not 200.
func watchHealth(ti *testInbox, stop <-chan struct{}) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var bad []string
		for {
			select {
			case <-stop:
				out <- bad
				return
			case <-time.After(100 * time.Millisecond):
			}
			if w := ti.get("/healthz"); w.Code != http.StatusOK {
				bad = append(bad, strings.TrimSpace(w.Body.String()))
			}
		}
	}()
	return out
}

// The acceptance: on SQLite, with one handler holding its transaction on
// every attempt, at least 95% of the other deliveries, sent at 50/s, are
// answered 202 within 3 s; the holder's effects never commit, and the log
// says which delivery held on and for how long.
func TestSQLiteKeepsAcknowledgingWhileAHandlerHoldsItsTransaction(t *testing.T) {
	t.Parallel()
	h := newHolder(false, 2)
	ti := startInbox(t, databases[0].url(t), h.router(), inbox.WithMaxAttempts(2))
	hold := payload("Email.Opened", "hold@example.com")
	require.Equal(t, http.StatusAccepted, ti.post(hold, testSecret))
	<-h.held

	stopWatching := make(chan struct{})
	health := watchHealth(ti, stopWatching)
	a := sendPaced(ti, "other", 50, 6*time.Second)
	close(stopWatching)
	t.Log(a)
	if unhealthy := <-health; len(unhealthy) > 0 {
		t.Logf("/healthz: %d of its samples not 200, the first: %q", len(unhealthy), unhealthy[0])
	} else {
		t.Log("/healthz: 200 throughout")
	}

	assert.GreaterOrEqual(t, a.acceptedWithin3s(), 0.95, "%s", a)
	ti.waitCount(t, int64(len(a.bodies)), `SELECT count(*) FROM processed_events`)
	ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'discarded' AND attempt = 2`)
	assert.Zero(t, ti.count(t, countProcessed, sha(hold)), "the holder's effects committed")
	for range 2 {
		assert.ErrorIs(t, <-h.again, inbox.ErrTxDone)
	}
	logs := ti.logs.String()
	assert.Contains(t, logs, `"level":"ERROR","msg":"delivery handler kept its transaction too long: rolled back and taken back; River retries it"`)
	assert.Contains(t, logs, `"body_sha256":"`+sha(hold)+`"`)
	assert.Regexp(t, `"held":"[0-9.]+s","bound":"2s"`, logs)
}

// A handler that ignores its context loses its turn all the same: the
// other deliveries are acknowledged and processed while it blocks, its
// later calls fail, and once it returns River retries its delivery, which
// is then processed once.
func TestHandlerIgnoringItsContextLosesItsTurn(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		h := newHolder(true, 1)
		ti := startInbox(t, url, h.router())
		hold := payload("Email.Opened", "hold@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(hold, testSecret))
		<-h.held

		a := sendPaced(ti, "other", 20, 4*time.Second)
		t.Log(a)
		assert.GreaterOrEqual(t, a.acceptedWithin3s(), 0.95, "%s", a)
		ti.waitCount(t, int64(len(a.bodies)), `SELECT count(*) FROM processed_events`)
		assert.Zero(t, ti.count(t, countProcessed, sha(hold)), "the holder's effects committed")

		close(h.release) // it has blocked for over 4 s: its turn was taken back long ago
		assert.ErrorIs(t, <-h.again, inbox.ErrTxDone)
		ti.waitCount(t, 1, countProcessed, sha(hold))
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'completed' AND attempt = 2 AND args->>'body_sha256' = $1`, sha(hold))
		assert.Zero(t, ti.count(t, `SELECT count(*) FROM processed_events WHERE event_type = 'again'`))
	})
}

// A statement still running when the time is up is stopped, whatever
// context it was given; the delivery is retried, and its neighbours are not
// held up.
func TestStatementRunningPastTheBoundIsStopped(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		slow := `SELECT pg_sleep(60)`
		if strings.HasPrefix(url, "sqlite:") {
			slow = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n`
		}
		var slowErr atomic.Pointer[error]
		var took atomic.Int64
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			d, _ := inbox.DeliveryFromContext(ctx)
			if err := recordEvent(ctx, e); err != nil || emailOf(e) != "slow@example.com" || d.Attempt > 1 {
				return err
			}
			start := time.Now()
			_, err := d.Tx.Exec(context.WithoutCancel(ctx), slow)
			took.Store(int64(time.Since(start)))
			slowErr.Store(&err)
			return err
		})
		ti := startInbox(t, url, router, inbox.WithTxTimeout(500*time.Millisecond))
		body := payload("Email.Opened", "slow@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		a := sendPaced(ti, "other", 20, 2*time.Second)
		t.Log(a)
		assert.Equal(t, 1.0, a.acceptedWithin3s(), "%s", a)
		ti.waitCount(t, 1, countProcessed, sha(body))
		ti.waitCount(t, int64(len(a.bodies))+1, `SELECT count(*) FROM processed_events`)
		require.NotNil(t, slowErr.Load())
		assert.Error(t, *slowErr.Load())
		assert.Less(t, time.Duration(took.Load()), 5*time.Second, "the statement ran on")
		assert.Contains(t, ti.logs.String(), `"bound":"500ms"`)
	})
}

func TestWithTxTimeoutRefusesANonPositiveDuration(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		assert.PanicsWithError(t, fmt.Sprintf("inbox: WithTxTimeout(%s): want a positive duration", d), func() {
			inbox.NewWorker[*sql.Tx](recordingRouter(), inbox.WithTxTimeout(d))
		})
	}
}
