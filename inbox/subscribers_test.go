package inbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// Each subscriber's table of effects, keyed by nothing: a second apply shows.
const (
	tableA = `CREATE TABLE IF NOT EXISTS effects_a (body_sha256 TEXT NOT NULL, subscriber TEXT NOT NULL)`
	tableB = `CREATE TABLE IF NOT EXISTS effects_b (body_sha256 TEXT NOT NULL, subscriber TEXT NOT NULL)`
)

// writeTo is a handler that records its delivery in table.
func writeTo(table string) webhooks.HandlerFunc {
	return func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx)
		_, err := d.Tx.Exec(ctx, `INSERT INTO `+table+` (body_sha256, subscriber) VALUES ($1, $2)`, d.BodySHA256, d.Subscriber)
		return err
	}
}

// The story: the default router writes table A, subscriber crm writes
// table B and then fails for ever for one delivery in ten. A holds every
// delivery once, B the others once, the dead letters are all crm's, and a
// replay of crm's runs B again and leaves A alone.
func TestSubscribersFailAndRetryOnTheirOwn(t *testing.T) {
	t.Parallel()
	bin := buildInboxCommand(t)
	onBothDatabases(t, func(t *testing.T, url string) {
		const n, failing = 200, 20
		def := webhooks.NewRouter()
		def.OnUnhandled(writeTo("effects_a"))
		crm := webhooks.NewRouter()
		crm.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			if err := writeTo("effects_b")(ctx, e); err != nil {
				return err
			}
			var d struct{ Email string }
			if err := e.DecodeData(&d); err != nil {
				return err
			}
			if strings.HasPrefix(d.Email, "crm-down") {
				return errors.New("CRM answered 503")
			}
			return nil
		})
		ti := startInbox(t, url, def, inbox.WithDDL(tableA, tableB),
			inbox.WithSubscriber("crm", crm), inbox.WithMaxAttempts(2))
		var wg sync.WaitGroup
		for i := range n {
			email := fmt.Sprintf("ok%d@example.com", i)
			if i%(n/failing) == 0 {
				email = fmt.Sprintf("crm-down%d@example.com", i)
			}
			body := payload("Email.Bounced", email)
			wg.Go(func() { assert.Equal(t, http.StatusAccepted, ti.post(body, testSecret)) })
		}
		wg.Wait()
		ti.waitCount(t, failing, `SELECT count(*) FROM river_job WHERE state = 'discarded'`)
		ti.waitCount(t, 2*n-failing, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		assert.EqualValues(t, n, ti.count(t, `SELECT count(DISTINCT body_sha256) FROM effects_a`))
		assert.EqualValues(t, n, ti.count(t, `SELECT count(*) FROM effects_a WHERE subscriber = 'default'`), "A once per delivery")
		assert.EqualValues(t, n-failing, ti.count(t, `SELECT count(DISTINCT body_sha256) FROM effects_b`))
		assert.EqualValues(t, n-failing, ti.count(t, `SELECT count(*) FROM effects_b WHERE subscriber = 'crm'`), "B once per delivery it kept")
		assert.Contains(t, ti.logs.String(), `"subscriber":"crm"`, "logs name the subscriber")

		out, stderr, code := runCommand(t, bin, url, "deadletters", "list", "--json")
		require.Equal(t, 0, code, stderr)
		var dead []struct{ Subscriber string }
		require.NoError(t, json.Unmarshal([]byte(out), &dead))
		assert.Len(t, dead, failing)
		for _, d := range dead {
			assert.Equal(t, "crm", d.Subscriber)
		}
		out, _, _ = runCommand(t, bin, url, "deadletters", "list", "--json", "--subscriber", "default")
		assert.JSONEq(t, `[]`, out)

		out, stderr, code = runCommand(t, bin, url, "replay", "--since", "1h", "--subscriber", "crm", "--json")
		require.Equal(t, 0, code, stderr)
		var replayed struct{ Count, Backfilled int }
		require.NoError(t, json.Unmarshal([]byte(out), &replayed))
		assert.Equal(t, n-failing, replayed.Count)
		assert.Zero(t, replayed.Backfilled, "crm had a job for every delivery")
		ti.waitCount(t, 2*(n-failing), `SELECT count(*) FROM effects_b`)
		ti.waitCount(t, 2*n-failing, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		assert.EqualValues(t, n, ti.count(t, `SELECT count(*) FROM effects_a`), "crm's replay leaves A alone")
	})
}

// A subscriber gets jobs only for the events its router handles, and the
// acknowledgement is one: a delivery either has all its jobs or none.
func TestSubscriberGetsOnlyWhatItsRouterHandles(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		audit := webhooks.NewRouter()
		audit.On(webhooks.EventEmailBounced, writeTo("effects_b"))
		ti := startInbox(t, url, nil, inbox.WithDDL(tableB), inbox.WithSubscriber("audit_log", audit))
		bounced, opened := payload("Email.Bounced", "s1@example.com"), payload("Email.Opened", "s1@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(bounced, testSecret))
		require.Equal(t, http.StatusAccepted, ti.post(opened, testSecret))
		ti.waitCount(t, 3, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		assert.EqualValues(t, 1, ti.count(t, `SELECT count(*) FROM effects_b WHERE body_sha256 = $1 AND subscriber = 'audit_log'`, sha(bounced)))
		assert.EqualValues(t, 0, ti.count(t, `SELECT count(*) FROM effects_b WHERE body_sha256 = $1`, sha(opened)))
		assert.EqualValues(t, 2, ti.count(t, countProcessed, sha(bounced))+ti.count(t, countProcessed, sha(opened)))
		assert.Equal(t, http.StatusOK, ti.post(bounced, testSecret), "a duplicate for every subscriber")
		assert.EqualValues(t, 3, ti.count(t, `SELECT count(*) FROM river_job`))
		tagged := `SELECT count(*) FROM river_job WHERE 'audit_log' = ANY(tags) AND queue = 'cakemail_inbox_audit_log'`
		if ti.db != nil {
			tagged = `SELECT count(*) FROM river_job, json_each(river_job.tags) WHERE json_each.value = 'audit_log' AND queue = 'cakemail_inbox_audit_log'`
		}
		assert.EqualValues(t, 1, ti.count(t, tagged), "River UI shows the subscriber as a tag; its queue is its own")
	})
}

// A subscriber that no running inbox has any more: its waiting jobs become
// dead letters that say why, and no other router ever runs them.
func TestJobsOfARemovedSubscriberBecomeDeadLettersThatSayWhy(t *testing.T) {
	t.Parallel()
	url := databases[0].url(t)
	var crmRuns atomic.Int32
	crm := webhooks.NewRouter()
	crm.OnUnhandled(func(context.Context, *webhooks.Event) error {
		crmRuns.Add(1)
		return errors.New("CRM down")
	})
	first := startInbox(t, url, nil, inbox.WithSubscriber("crm", crm))
	body := payload("Email.Opened", "gone@example.com")
	require.Equal(t, http.StatusAccepted, first.post(body, testSecret))
	first.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'retryable'`)
	require.NoError(t, first.ib.Stop(context.Background()))
	runsBefore := crmRuns.Load()

	var defaultRuns atomic.Int32
	def := webhooks.NewRouter()
	def.OnUnhandled(func(context.Context, *webhooks.Event) error { defaultRuns.Add(1); return nil })
	second := startInbox(t, url, def)
	second.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'cancelled' AND queue = 'cakemail_inbox_crm'`)
	errs := second.count(t, `SELECT count(*) FROM river_job WHERE state = 'cancelled' AND CAST(json(errors) AS TEXT) LIKE '%no running inbox has subscriber%crm%'`)
	assert.EqualValues(t, 1, errs, "the dead letter says why")
	assert.Equal(t, runsBefore, crmRuns.Load(), "nothing runs crm's jobs once no inbox has it")
	assert.Zero(t, defaultRuns.Load(), "the delivery's default job had completed; crm's never runs through another router")
	assert.Contains(t, second.logs.String(), `"msg":"inbox: no running inbox has this subscriber: its waiting jobs are now dead letters","subscriber":"crm","jobs":1`)
}

func TestWithSubscriberRefusesBadNames(t *testing.T) {
	t.Parallel()
	r := webhooks.NewRouter()
	for _, c := range []struct {
		opts []inbox.Option
		want string
	}{
		{[]inbox.Option{inbox.WithSubscriber("CRM", r)}, "lower-case identifier"},
		{[]inbox.Option{inbox.WithSubscriber("crm-sync", r)}, "lower-case identifier"},
		{[]inbox.Option{inbox.WithSubscriber("", r)}, "lower-case identifier"},
		{[]inbox.Option{inbox.WithSubscriber(strings.Repeat("a", 33), r)}, "at most 32"},
		{[]inbox.Option{inbox.WithSubscriber("default", r)}, "already the"},
		{[]inbox.Option{inbox.WithSubscriber("crm", nil)}, "want a router"},
		{[]inbox.Option{inbox.WithSubscriber("crm", r), inbox.WithSubscriber("crm", r)}, "given twice"},
	} {
		_, err := inbox.Open(context.Background(), databases[0].url(t), r, c.opts...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
}
