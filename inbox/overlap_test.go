package inbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// Operators' runs overlapping in every way the issue names, on both
// databases, with the real command beside a running inbox: each run counts
// only the deliveries it moved, and every delivery's effects are written
// exactly as often as the runs say they moved it (once, plus once per move).
func TestOverlappingOperatorRuns(t *testing.T) {
	t.Parallel()
	bin := buildInboxCommand(t)

	for _, c := range []struct {
		name  string
		apart stagger
		n     int
	}{{"100-200 ms apart", issueStagger, 1000}, {"at once", atOnce, 500}} {
		t.Run("two retry --all "+c.name, func(t *testing.T) {
			t.Parallel()
			onBothDatabases(t, func(t *testing.T, url string) {
				o := newOverlap(t, url)
				dead := o.deadLetters(c.n)
				o.fixed.Store(true)
				runs := o.run(bin, c.apart, []string{"deadletters", "retry", "--all"}, []string{"deadletters", "retry", "--all"})
				o.requireMovedOnceEach(dead, runs[0], runs[1])
				o.requireEffects(dead, nil, runs...)
			})
		})
	}

	t.Run("two retry ID... of the same ids", func(t *testing.T) {
		t.Parallel()
		onBothDatabases(t, func(t *testing.T, url string) {
			o := newOverlap(t, url)
			dead := o.deadLetters(200)
			o.fixed.Store(true)
			args := []string{"deadletters", "retry"}
			for _, id := range dead.ids() {
				args = append(args, strconv.FormatInt(id, 10))
			}
			runs := o.run(bin, atOnce, args, args)
			o.requireMovedOnceEach(dead, runs[0], runs[1])
			o.requireEffects(dead, nil, runs...)
		})
	})

	t.Run("two replays beside a retry --all", func(t *testing.T) {
		t.Parallel()
		onBothDatabases(t, func(t *testing.T, url string) {
			o := newOverlap(t, url)
			o.fixed.Store(true)
			completed := o.completed(150)
			o.fixed.Store(false)
			dead := o.deadLetters(150)
			o.fixed.Store(true)
			replay := []string{"replay", "--since", "1h"}
			runs := o.run(bin, atOnce, replay, []string{"deadletters", "retry", "--all"}, replay)
			// The retry moved every dead letter; whichever replay came
			// first moved every completed delivery.
			o.requireMovedOnceEach(dead, runs[1])
			for id := range completed {
				assert.True(t, slices.Contains(runs[0].IDs, id) || slices.Contains(runs[2].IDs, id), "no replay moved job %d", id)
			}
			o.requireEffects(dead, completed, runs...)
		})
	})

	t.Run("River UI's retry beside retry --all", func(t *testing.T) {
		t.Parallel()
		onBothDatabases(t, func(t *testing.T, url string) {
			o := newOverlap(t, url)
			dead := o.deadLetters(300)
			o.fixed.Store(true)
			admin := httptest.NewServer(o.ti.ib.AdminHandler())
			t.Cleanup(admin.Close)
			var ui moved
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(atOnce()) // as the command starts
				ui = retryInRiverUI(t, admin.URL, dead.ids())
			}()
			runs := o.run(bin, atOnce, []string{"deadletters", "retry", "--all"})
			<-done
			o.requireMovedOnceEach(dead, runs[0], ui)
			o.requireEffects(dead, nil, runs[0], ui)
		})
	})
}

// overlap is a running inbox whose handler fails every delivery with
// webhooks.ErrInvalidEvent (a dead letter at once) until fixed.
type overlap struct {
	t     *testing.T
	url   string
	ti    *testInbox
	fixed atomic.Bool
	next  atomic.Int64
}

func newOverlap(t *testing.T, url string) *overlap {
	o := &overlap{t: t, url: url}
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		if !o.fixed.Load() {
			return fmt.Errorf("%w: the handler's bug", webhooks.ErrInvalidEvent)
		}
		return recordEvent(ctx, e)
	})
	o.ti = startInbox(t, url, router)
	return o
}

// deliveries are bodies by job id.
type deliveries map[int64][]byte

func (d deliveries) ids() []int64 {
	ids := make([]int64, 0, len(d))
	for id := range d {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// post stores n new deliveries and waits until every job is in state.
func (o *overlap) post(n int, state string) deliveries {
	t := o.t
	before := o.ti.count(t, `SELECT count(*) FROM river_job WHERE state = $1`, state)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = payload("Email.Opened", fmt.Sprintf("overlap%d@example.com", o.next.Add(1)))
	}
	start := time.Now()
	insertDeliveries(t, o.url, bodies, nil)
	t.Logf("inserted in %s", time.Since(start))
	defer func() { t.Logf("worked in %s", time.Since(start)) }()
	o.waitCount(before+int64(n), `SELECT count(*) FROM river_job WHERE state = $1`, state)
	idOf := o.pairs(`SELECT ` + argText(o.url, "body_sha256") + `, id FROM river_job`)
	byID := deliveries{}
	for _, body := range bodies {
		byID[idOf[sha(body)]] = body
	}
	require.Len(t, byID, n)
	return byID
}

// waitCount is testInbox.waitCount with room for a thousand jobs on a busy
// machine under the race detector.
func (o *overlap) waitCount(want int64, query string, args ...any) {
	o.t.Helper()
	require.Eventually(o.t, func() bool { return o.ti.count(o.t, query, args...) == want }, time.Minute, 20*time.Millisecond,
		"%s: want %d", query, want)
}

func (o *overlap) deadLetters(n int) deliveries { return o.post(n, "cancelled") }
func (o *overlap) completed(n int) deliveries   { return o.post(n, "completed") }

// argText is a job's args field as text, in the database's SQL.
func argText(url, field string) string {
	if strings.HasPrefix(url, "sqlite://") {
		return `json_extract(args, '$.` + field + `')`
	}
	return `args->>'` + field + `'`
}

// moved is what one run said it moved.
type moved struct {
	Code  int     // exit status; 0 for River UI
	Count int     `json:"count"`
	IDs   []int64 `json:"ids"`
}

// stagger is the time between two runs' starts.
type stagger func() time.Duration

// issueStagger is the issue's: 100 to 200 ms, when the first run is still
// listing its jobs on a slow machine; atOnce starts the runs within 30 ms,
// so they list and move the same jobs at the same moments.
var (
	issueStagger stagger = func() time.Duration { return time.Duration(100+rand.IntN(101)) * time.Millisecond }
	atOnce       stagger = func() time.Duration { return time.Duration(rand.IntN(31)) * time.Millisecond }
)

// run starts each command apart from the one before, with --json, and
// returns what each moved once all have exited. A `retry ID...` that finds
// one of its ids no longer dead fails, having moved nothing.
func (o *overlap) run(bin string, apart stagger, commands ...[]string) []moved {
	t := o.t
	out := make([]moved, len(commands))
	var wg sync.WaitGroup
	for i, args := range commands {
		if i > 0 {
			time.Sleep(apart())
		}
		cmd := exec.Command(bin, append(args, "--json")...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+o.url, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start())
		wg.Go(func() {
			err := cmd.Wait()
			if exitErr, ok := err.(*exec.ExitError); ok {
				out[i].Code = exitErr.ExitCode()
				assert.Contains(t, stderr.String(), "is not a dead letter", "%v", args)
				return
			}
			if !assert.NoError(t, err) || !assert.NoError(t, json.Unmarshal(stdout.Bytes(), &out[i]), "%v: %s", args, stderr.String()) {
				return
			}
			assert.Len(t, out[i].IDs, out[i].Count)
			t.Logf("%s: moved %d %s", strings.Join(args[:min(len(args), 3)], " "), out[i].Count, strings.TrimSpace(stderr.String()))
		})
	}
	wg.Wait()
	return out
}

// retryInRiverUI asks River UI's retry for ids, as its front end does.
func retryInRiverUI(t *testing.T, adminURL string, ids []int64) moved {
	var body struct {
		IDs []string `json:"ids"`
	}
	for _, id := range ids {
		body.IDs = append(body.IDs, strconv.FormatInt(id, 10))
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(adminURL+"/riverui/api/jobs/retry", "text/plain;charset=UTF-8", bytes.NewReader(b))
	if !assert.NoError(t, err) {
		return moved{}
	}
	defer resp.Body.Close()
	var answer struct {
		Status, Message string
		IDs             []string
	}
	assert.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	if len(answer.IDs) < len(ids) {
		assert.Equal(t, http.StatusConflict, resp.StatusCode)
		assert.Contains(t, answer.Message, "Only a dead letter (discarded or cancelled) can be retried")
	} else {
		assert.Equal(t, http.StatusOK, resp.StatusCode, answer.Message)
	}
	m := moved{Count: len(answer.IDs)}
	for _, s := range answer.IDs {
		id, err := strconv.ParseInt(s, 10, 64)
		assert.NoError(t, err)
		m.IDs = append(m.IDs, id)
	}
	t.Logf("River UI: moved %d", m.Count)
	return m
}

// requireMovedOnceEach checks that the runs between them moved every one of
// the deliveries, and none twice.
func (o *overlap) requireMovedOnceEach(want deliveries, runs ...moved) {
	var all []int64
	total := 0
	for _, r := range runs {
		all = append(all, r.IDs...)
		total += r.Count
	}
	slices.Sort(all)
	assert.Equal(o.t, len(want), total, "the runs' counts do not add up")
	assert.Equal(o.t, want.ids(), all, "the runs moved other jobs, or one twice")
}

// requireEffects waits until every job is completed, then checks that each
// delivery's effects were written once per time a run moved it, plus once
// for each delivery that had completed before the runs.
func (o *overlap) requireEffects(dead, completed deliveries, runs ...moved) {
	t := o.t
	want := map[string]int64{}
	for _, body := range completed {
		want[sha(body)] = 1
	}
	for _, r := range runs {
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(r.IDs))), len(r.IDs), "a run moved a delivery twice")
		for _, id := range r.IDs {
			body, ok := dead[id]
			if !ok {
				body, ok = completed[id]
			}
			require.True(t, ok, "a run moved job %d, which is none of the test's", id)
			want[sha(body)]++
		}
	}
	total := len(dead) + len(completed)
	start := time.Now()
	defer func() { t.Logf("completed in %s", time.Since(start)) }()
	o.waitCount(int64(total), `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	assert.Equal(t, want, o.effects())
}

// effects counts the effects written for each delivery.
func (o *overlap) effects() map[string]int64 {
	return o.pairs(`SELECT body_sha256, count(*) FROM processed_events GROUP BY body_sha256`)
}

// pairs runs a query whose rows are a text and an integer.
func (o *overlap) pairs(query string) map[string]int64 {
	t := o.t
	got := map[string]int64{}
	var key string
	var n int64
	if o.ti.db != nil {
		rows, err := o.ti.db.Query(query)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			require.NoError(t, rows.Scan(&key, &n))
			got[key] = n
		}
		require.NoError(t, rows.Err())
		return got
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, o.ti.pg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	require.NoError(t, err)
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error { got[key] = n; return nil })
	require.NoError(t, err)
	return got
}
