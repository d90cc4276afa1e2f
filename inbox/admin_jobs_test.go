package inbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// River UI's retry, delete and cancel take only what cannot lose or repeat a
// delivery, and tell the operator why they left a job alone: retry moves
// dead letters; delete removes dead letters; cancel makes a waiting delivery
// a dead letter. A delivery that completed, runs or waits is never retried
// or deleted.
func TestRiverUIChangesOnlyWhatTheRulesAllow(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		var fixed atomic.Bool
		release := make(chan struct{})
		router := webhooks.NewRouter()
		router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
			if !fixed.Load() {
				return fmt.Errorf("%w: handler bug", webhooks.ErrInvalidEvent)
			}
			return recordEvent(ctx, e)
		})
		router.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
			<-release
			return recordEvent(ctx, e)
		})
		router.OnUnhandled(recordEvent)
		ti := startInbox(t, url, router)
		admin := httptest.NewServer(ti.ib.AdminHandler())
		t.Cleanup(admin.Close)
		t.Cleanup(func() {
			select {
			case <-release:
			default:
				close(release) // a failed test leaves no handler blocking Stop
			}
		})

		dead := payload("Email.Bounced", "dead@example.com")
		completed := payload("Email.Clicked", "completed@example.com")
		running := payload("Email.Opened", "running@example.com")
		for _, body := range [][]byte{dead, completed, running} {
			require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		}
		scheduled := payload("Email.Delivered", "scheduled@example.com")
		insertScheduled(t, url, scheduled)
		id := func(body []byte) int64 {
			return ti.count(t, `SELECT id FROM river_job WHERE `+argText(url, "body_sha256")+` = $1`, sha(body))
		}
		state := func(body []byte) string {
			return jobStates(t, ti, url)[id(body)]
		}
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`)
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'running'`)
		before := jobStates(t, ti, url)
		require.Equal(t, "scheduled", state(scheduled))

		post := func(action string, body string) (int, answer) {
			t.Helper()
			resp, err := http.Post(admin.URL+"/riverui/api/jobs/"+action, "text/plain;charset=UTF-8", strings.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			var a answer
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
			return resp.StatusCode, a
		}
		ids := func(bodies ...[]byte) string {
			var quoted []string
			for _, b := range bodies {
				quoted = append(quoted, fmt.Sprintf(`"%d"`, id(b)))
			}
			return `{"ids":[` + strings.Join(quoted, ",") + `]}`
		}

		code, a := post("retry", ids(completed, running, scheduled))
		assert.Equal(t, http.StatusConflict, code)
		assert.Empty(t, a.IDs)
		assert.Contains(t, a.Message, "Retried 0 of 3 jobs. Only a dead letter (discarded or cancelled) can be retried")
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is completed: to run a completed delivery again, use cakemail-inbox replay", id(completed)))
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is running", id(running)))
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is scheduled", id(scheduled)))

		code, a = post("delete", ids(completed, scheduled, running))
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, a.Message, "Deleted 0 of 3 jobs. Only a dead letter (discarded or cancelled) can be deleted")
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is completed: a completed delivery is how a resend is recognised", id(completed)))
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is scheduled: it has not been handled: deleting it would lose an acknowledged event", id(scheduled)))

		code, a = post("cancel", ids(running, completed, dead))
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, a.Message, "Cancelled 0 of 3 jobs. Only a job waiting to run")
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is running: it runs now, and finishes or fails within the job timeout (1m0s)", id(running)))
		assert.Contains(t, a.Message, fmt.Sprintf("job %d is cancelled: it is a dead letter already", id(dead)))
		assert.Equal(t, before, jobStates(t, ti, url), "a refused change changed a job")

		// A waiting delivery is dropped in two steps, each its own decision.
		code, a = post("cancel", ids(scheduled))
		assert.Equal(t, http.StatusOK, code, a.Message)
		assert.Equal(t, "cancelled", state(scheduled))
		scheduledID := id(scheduled)
		code, a = post("delete", ids(scheduled))
		assert.Equal(t, http.StatusOK, code, a.Message)
		assert.Equal(t, answer{Status: "ok", IDs: []string{fmt.Sprint(scheduledID)}}, a)
		assert.EqualValues(t, 0, ti.count(t, `SELECT count(*) FROM river_job WHERE id = $1`, scheduledID))

		// Ids as numbers too; a partial retry says what it did.
		fixed.Store(true)
		close(release)
		code, a = post("retry", fmt.Sprintf(`{"ids":[%d, 99999, %d]}`, id(dead), id(dead)))
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, []string{fmt.Sprint(id(dead))}, a.IDs)
		assert.Equal(t, "Retried 1 of 2 jobs. Only a dead letter (discarded or cancelled) can be retried; left alone: job 99999 does not exist.", a.Message)
		ti.waitCount(t, 3, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		for _, body := range [][]byte{dead, completed, running} {
			assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)))
		}

		tooMany := make([]string, 1001)
		for i := range tooMany {
			tooMany[i] = fmt.Sprint(i + 1)
		}
		for _, body := range []string{`{"ids":[]}`, `{}`, `{"ids":["twelve"]}`, `{"ids":[-1]}`, `{"ids":[1.5]}`, `not json`, `{"ids":[` + strings.Join(tooMany, ",") + `]}`} {
			code, a = post("retry", body)
			assert.Equal(t, http.StatusBadRequest, code, body[:min(len(body), 40)])
			assert.Contains(t, a.Message, "Invalid request", body[:min(len(body), 40)])
		}
		assert.EqualValues(t, 3, ti.count(t, `SELECT count(*) FROM river_job WHERE state = 'completed'`))
	})
}

// answer is the inbox's answer to River UI's job changes.
type answer struct {
	Status  string   `json:"status,omitempty"`
	Message string   `json:"message,omitempty"`
	IDs     []string `json:"ids"`
}

// jobStates reads every job's state.
func jobStates(t *testing.T, ti *testInbox, url string) map[int64]string {
	o := &overlap{t: t, url: url, ti: ti}
	states := map[int64]string{}
	for s, id := range o.pairs(`SELECT CAST(id AS TEXT) || ' ' || CAST(state AS TEXT), id FROM river_job`) {
		states[id] = strings.Fields(s)[1]
	}
	return states
}

// insertScheduled stores a delivery due in an hour, as an acknowledged
// delivery waiting for its turn: nothing works it during the test.
func insertScheduled(t *testing.T, url string, body []byte) {
	insertDeliveries(t, url, [][]byte{body}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
}

// insertDeliveries stores deliveries as the inbox's acceptor does, in one
// transaction of another River client: quicker than posting each.
func insertDeliveries(t *testing.T, url string, bodies [][]byte, opts *river.InsertOpts) {
	ctx := context.Background()
	params := make([]river.InsertManyParams, len(bodies))
	for i, body := range bodies {
		event, err := webhooks.ParseEvent(body)
		require.NoError(t, err)
		params[i] = river.InsertManyParams{Args: inbox.NewDeliveryArgs(body, event), InsertOpts: opts}
	}
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_txlock=immediate")
		require.NoError(t, err)
		defer db.Close()
		client, err := river.NewClient(riversqlite.New(db), &river.Config{Logger: discard()})
		require.NoError(t, err)
		_, err = client.InsertMany(ctx, params)
		require.NoError(t, err)
		return
	}
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: discard()})
	require.NoError(t, err)
	_, err = client.InsertMany(ctx, params)
	require.NoError(t, err)
}
