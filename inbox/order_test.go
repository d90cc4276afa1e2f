package inbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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
	ti.ib.AdminHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Contains(t, w.Body.String(), `cakemail_inbox_jobs_total{outcome="stale",subscriber="default"} 1`)
	assert.Contains(t, ti.logs.String(), `"level":"DEBUG","msg":"stale event: a later one for its key was applied; completed without running the handler","subscriber":"default","order_key":"contact:5"`)
	assert.Contains(t, ti.logs.String(), fmt.Sprintf(`"created_at":%q,"applied_created_at":%q`,
		at.Add(-10*time.Second).Format(time.RFC3339), at.Format(time.RFC3339)))
}
