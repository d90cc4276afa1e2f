package inbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// The contact-sync program of the issue: each contact's state is its newest
// event's, and opens are counted, every one once.
const (
	contactsTable = `CREATE TABLE IF NOT EXISTS contacts (
		contact_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at BIGINT NOT NULL)`
	opensTable = `CREATE TABLE IF NOT EXISTS opens (body_sha256 TEXT NOT NULL)`
)

// contactKey keys the contact's state events by contact; opens are not held back.
func contactKey(e *webhooks.Event) (string, bool) {
	if e.Type == webhooks.EventEmailOpened {
		return "", false
	}
	var d webhooks.EmailData
	if err := e.DecodeData(&d); err != nil || d.ContactID == "" {
		return "", false
	}
	return "contact:" + d.ContactID, true
}

// contactSync is the program's router; failFirst makes the first attempt of
// the bodies it returns true for fail after writing.
func contactSync(failFirst func(sha string) bool) *webhooks.Router {
	r := webhooks.NewRouter()
	setState := func(ctx context.Context, e *webhooks.Event, d webhooks.EmailData) error {
		del, _ := inbox.DeliveryFromContext(ctx)
		if _, err := del.Tx.Exec(ctx, `INSERT INTO contacts (contact_id, state, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
			d.ContactID, string(e.Type), e.CreatedAt.Unix()); err != nil {
			return err
		}
		if del.Attempt == 1 && failFirst(del.BodySHA256) {
			return errors.New("downstream hiccup")
		}
		return nil
	}
	for _, t := range []webhooks.EventType{webhooks.EventContactAdded, webhooks.EventContactUpdated,
		webhooks.EventEmailUnsubscribed, webhooks.EventContactRemoved} {
		r.On(t, webhooks.HandleData(setState))
	}
	r.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
		del, _ := inbox.DeliveryFromContext(ctx)
		_, err := del.Tx.Exec(ctx, `INSERT INTO opens (body_sha256) VALUES ($1)`, del.BodySHA256)
		return err
	})
	return r
}

// contactEvents are each contact's events, 10 s apart, newest last, and
// opens; all shuffled.
func contactEvents(contacts, opens int) (bodies [][]byte, newest map[string]string) {
	base := time.Now().Add(-time.Hour).Unix()
	newest = map[string]string{}
	kinds := []webhooks.EventType{webhooks.EventContactAdded, webhooks.EventContactUpdated,
		webhooks.EventEmailUnsubscribed, webhooks.EventContactAdded}
	for c := range contacts {
		id := fmt.Sprint(900000000000 + c)
		for i, k := range kinds {
			bodies = append(bodies, fmt.Appendf(nil, `{"event":%q,"account_id":7,"created_on":%d,"data":{"contact_id":%s,"email":"c%d@example.com"}}`,
				k, base+int64(c)+int64(10*i), id, c))
		}
		newest[id] = string(kinds[len(kinds)-1])
		if c%2 == 0 { // half the contacts unsubscribe last: a late Contact.Added must not resubscribe them
			bodies[len(bodies)-3] = fmt.Appendf(nil, `{"event":%q,"account_id":7,"created_on":%d,"data":{"contact_id":%s,"email":"c%d@example.com"}}`,
				webhooks.EventEmailUnsubscribed, base+int64(c)+40, id, c)
			newest[id] = string(webhooks.EventEmailUnsubscribed)
		}
	}
	for o := range opens {
		bodies = append(bodies, fmt.Appendf(nil, `{"event":"Email.Opened","account_id":7,"created_on":%d,"data":{"contact_id":%d}}`,
			base+int64(o), 900000000000+o%contacts))
	}
	rand.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	return bodies, newest
}

// checkContacts asserts each contact holds its newest event's state.
func checkContacts(t *testing.T, ti *testInbox, newest map[string]string) {
	t.Helper()
	wrong := 0
	for id, state := range newest {
		if ti.count(t, `SELECT count(*) FROM contacts WHERE contact_id = $1 AND state = $2`, id, state) != 1 {
			wrong++
		}
	}
	assert.Zero(t, wrong, "contacts holding an older event's state")
}

// Shuffled, some sent twice, some failing their first attempt, on two
// replicas at once where the database allows: every contact ends in its
// newest event's state, every open is applied once, and a replay of an old
// event type changes neither.
func TestNewestEventWinsPerOrderKey(t *testing.T) {
	t.Parallel()
	bin := buildInboxCommand(t)
	onBothDatabases(t, func(t *testing.T, url string) {
		const contacts, opens = 40, 80
		bodies, newest := contactEvents(contacts, opens)
		var failed sync.Map
		failFirst := func(sha string) bool {
			_, seen := failed.LoadOrStore(sha, true)
			return !seen && sha[0] < '3' // about 3 in 16
		}
		opts := []inbox.Option{inbox.WithDDL(contactsTable, opensTable), inbox.WithOrderKey(contactKey)}
		replicas := []*testInbox{startInbox(t, url, contactSync(failFirst), opts...)}
		if !strings.HasPrefix(url, "sqlite://") {
			replicas = append(replicas, startInbox(t, url, contactSync(failFirst), opts...))
		}
		var wg sync.WaitGroup
		for i, body := range bodies {
			ti := replicas[i%len(replicas)]
			wg.Go(func() {
				assert.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
				if i%10 == 0 {
					assert.Equal(t, http.StatusOK, ti.post(body, testSecret), "sent twice")
				}
			})
		}
		wg.Wait()
		ti := replicas[0]
		ti.waitCount(t, int64(len(bodies)), `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		checkContacts(t, ti, newest)
		assert.EqualValues(t, opens, ti.count(t, `SELECT count(*) FROM opens`))
		assert.EqualValues(t, opens, ti.count(t, `SELECT count(DISTINCT body_sha256) FROM opens`))
		assert.EqualValues(t, contacts, ti.count(t, `SELECT count(*) FROM cakemail_inbox_order`), "one row per key")

		out, stderr, code := runCommand(t, bin, url, "status", "--json")
		require.Equal(t, 0, code, stderr)
		var status struct{ CompletedLastHour, StaleLastHour int64 }
		require.NoError(t, json.Unmarshal([]byte(strings.NewReplacer("completed_last_hour", "CompletedLastHour",
			"stale_last_hour", "StaleLastHour").Replace(out)), &status))
		assert.EqualValues(t, len(bodies), status.CompletedLastHour)
		assert.Positive(t, status.StaleLastHour, "shuffled events arrive after newer ones")

		out, stderr, code = runCommand(t, bin, url, "replay", "--since", "1h", "--type", "contact.added", "--json")
		require.Equal(t, 0, code, stderr)
		var replayed struct{ Count int }
		require.NoError(t, json.Unmarshal([]byte(out), &replayed))
		require.Equal(t, 2*contacts, replayed.Count)
		ti.waitCount(t, int64(len(bodies)), `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		checkContacts(t, ti, newest)
		assert.EqualValues(t, opens, ti.count(t, `SELECT count(*) FROM opens`))
	})
}

// A stale event completes without running its handler: counted, logged at
// DEBUG with the key and both times; an event without a time, or without a
// key, is never held back.
func TestStaleEventIsCountedAndLoggedWithoutRunning(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	r := webhooks.NewRouter()
	r.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		runs.Add(1)
		return recordEvent(ctx, e)
	})
	ti := startInbox(t, databases[0].url(t), r, inbox.WithOrderKey(contactKey))
	at := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	newer := fmt.Appendf(nil, `{"event":"Contact.Updated","created_on":%d,"data":{"contact_id":5}}`, at.Unix())
	older := fmt.Appendf(nil, `{"event":"Contact.Added","created_on":%d,"data":{"contact_id":5}}`, at.Unix()-10)
	untimed := []byte(`{"event":"Contact.Added","data":{"contact_id":5}}`)
	unkeyed := fmt.Appendf(nil, `{"event":"Contact.Added","created_on":%d,"data":{}}`, at.Unix()-20)
	for _, b := range [][]byte{newer, older, untimed, unkeyed} {
		require.Equal(t, http.StatusAccepted, ti.post(b, testSecret))
		ti.waitCount(t, 0, `SELECT count(*) FROM river_job WHERE state <> 'completed'`)
	}
	assert.EqualValues(t, 3, runs.Load(), "all but the stale one ran")
	assert.EqualValues(t, 0, ti.count(t, countProcessed, sha(older)))
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Host = "localhost" // the admin handler serves its operator only
	ti.ib.AdminHandler().ServeHTTP(w, req)
	assert.Contains(t, w.Body.String(), `cakemail_inbox_jobs_total{outcome="stale",subscriber="default"} 1`)
	assert.Contains(t, ti.logs.String(), `"level":"DEBUG","msg":"stale event: a later one for its key was applied; completed without running the handler","subscriber":"default","order_key":"contact:5"`)
	assert.Contains(t, ti.logs.String(), fmt.Sprintf(`"created_at":%q,"applied_created_at":%q`,
		at.Add(-10*time.Second).Format(time.RFC3339), at.Format(time.RFC3339)))
}

// Each subscriber keeps its own record: one that applied the newer event
// does not hold back another that has not seen it yet.
func TestOrderIsKeptPerSubscriber(t *testing.T) {
	t.Parallel()
	var crmRuns atomic.Int32
	crm := webhooks.NewRouter()
	crm.On(webhooks.EventContactAdded, func(context.Context, *webhooks.Event) error { crmRuns.Add(1); return nil })
	def := webhooks.NewRouter()
	def.OnUnhandled(recordEvent)
	ti := startInbox(t, databases[0].url(t), def, inbox.WithOrderKey(contactKey), inbox.WithSubscriber("crm", crm))
	at := time.Now().Add(-time.Minute).Unix()
	newer := fmt.Appendf(nil, `{"event":"Email.Unsubscribed","created_on":%d,"data":{"contact_id":8}}`, at)
	older := fmt.Appendf(nil, `{"event":"Contact.Added","created_on":%d,"data":{"contact_id":8}}`, at-30)
	require.Equal(t, http.StatusAccepted, ti.post(newer, testSecret)) // crm does not handle it
	ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	require.Equal(t, http.StatusAccepted, ti.post(older, testSecret))
	ti.waitCount(t, 3, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	assert.EqualValues(t, 0, ti.count(t, countProcessed, sha(older)), "stale for the default subscriber")
	assert.EqualValues(t, 1, crmRuns.Load(), "new to crm, whose record never saw the newer event")
	assert.EqualValues(t, 2, ti.count(t, `SELECT count(*) FROM cakemail_inbox_order WHERE order_key = 'contact:8'`))
}

// On a service's own River client, the worker's order key works as Open's:
// it creates its table, and the newest event wins.
func TestOrderKeyOnAServicesOwnRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "own.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	migrator, err := rivermigrate.New(riversqlite.New(db), nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	_, err = db.Exec(contactsTable)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, inbox.NewWorker[*sql.Tx](contactSync(func(string) bool { return false }), inbox.WithOrderKey(contactKey)))
	config := &river.Config{Workers: workers, Logger: discard()}
	require.NoError(t, inbox.RiverConfig(config))
	client, err := river.NewClient(riversqlite.New(db), config)
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { client.Stop(ctx) })
	acceptor := inbox.NewAcceptor(client)
	t.Cleanup(acceptor.Close)
	v, err := webhooks.NewVerifier([]string{testSecret})
	require.NoError(t, err)
	at := time.Now().Add(-time.Minute).Unix()
	completed := func() int {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&n))
		return n
	}
	for i, body := range [][]byte{
		fmt.Appendf(nil, `{"event":"Email.Unsubscribed","created_on":%d,"data":{"contact_id":9}}`, at),
		fmt.Appendf(nil, `{"event":"Contact.Added","created_on":%d,"data":{"contact_id":9}}`, at-30),
	} {
		w := httptest.NewRecorder()
		v.Middleware(acceptor).ServeHTTP(w, webhookstest.NewSignedRequest("/", body, testSecret))
		require.Equal(t, http.StatusAccepted, w.Code)
		require.Eventually(t, func() bool { return completed() == i+1 }, 15*time.Second, 10*time.Millisecond)
	}
	var state string
	require.NoError(t, db.QueryRow(`SELECT state FROM contacts WHERE contact_id = '9'`).Scan(&state))
	assert.Equal(t, string(webhooks.EventEmailUnsubscribed), state)
}
