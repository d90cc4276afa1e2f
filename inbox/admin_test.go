package inbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// The operator's story end to end, as the issue tells it: a receiver mounts
// AdminHandler and wires OnReject; deliveries arrive (new ones, duplicates,
// one forged, one whose data the handler cannot decode); the metrics count
// each; River UI shows the dead letter; the command lists it, a dry run
// changes nothing, retry runs it again once the handler is fixed, and a
// replay runs one type's completed deliveries again.
func TestOperatingTheInbox(t *testing.T) {
	t.Parallel()
	bin := buildInboxCommand(t)
	onBothDatabases(t, func(t *testing.T, url string) {
		type strict struct {
			ContactID int `json:"contact_id"`
		}
		var fixed atomic.Bool // the handler bug is fixed
		router := webhooks.NewRouter()
		router.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
			if fixed.Load() {
				return recordEvent(ctx, e)
			}
			return webhooks.HandleData(func(ctx context.Context, e *webhooks.Event, d strict) error {
				return recordEvent(ctx, e)
			})(ctx, e)
		})
		router.OnUnhandled(recordEvent)
		ti := startInbox(t, url, router) // its verifier passes refusals to OnReject
		admin := httptest.NewServer(ti.ib.AdminHandler())
		t.Cleanup(admin.Close)

		var clicked, opened [][]byte
		for i := range 6 {
			clicked = append(clicked, payload("Email.Clicked", fmt.Sprintf("click%d@example.com", i)))
		}
		for i := range 4 {
			opened = append(opened, []byte(fmt.Sprintf(`{"event":"email.opened","created_on":%d,"data":{"contact_id":%d}}`, time.Now().Unix(), i)))
		}
		for _, body := range append(clicked, opened...) {
			require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		}
		for _, body := range clicked[:3] {
			require.Equal(t, http.StatusOK, ti.post(body, testSecret))
		}
		assert.Equal(t, http.StatusUnauthorized, ti.post(payload("Email.Clicked", "forged@example.com"), "not-the-secret"))
		undecodable := []byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{"contact_id":"not a number"}}`, time.Now().Unix()))
		require.Equal(t, http.StatusAccepted, ti.post(undecodable, testSecret))

		const countDead = `SELECT count(*) FROM river_job WHERE state IN ('cancelled', 'discarded')`
		ti.waitCount(t, 10, `SELECT count(*) FROM processed_events`)
		ti.waitCount(t, 1, countDead)

		// Metrics: each count, once the workers have recorded theirs.
		m := waitMetrics(t, admin.URL, func(m metricValues) bool {
			return m[`cakemail_inbox_jobs_total{outcome="completed",subscriber="default"}`] == 10 && m[`cakemail_inbox_jobs_total{outcome="dead",subscriber="default"}`] == 1
		})
		for name, want := range map[string]float64{
			`cakemail_inbox_deliveries_total{outcome="accepted"}`:              11,
			`cakemail_inbox_deliveries_total{outcome="duplicate"}`:             3,
			`cakemail_inbox_deliveries_total{outcome="unavailable"}`:           0,
			`cakemail_inbox_refused_total{reason="signature_mismatch"}`:        1,
			`cakemail_inbox_refused_total{reason="malformed_signature"}`:       0,
			`cakemail_inbox_ack_duration_seconds_count`:                        14,
			`cakemail_inbox_jobs_total{outcome="failed",subscriber="default"}`: 0,
			`cakemail_inbox_job_duration_seconds{subscriber="default"}_count`:  11,
			`cakemail_inbox_backlog{subscriber="default"}`:                     0,
			`cakemail_inbox_oldest_waiting_seconds{subscriber="default"}`:      0,
			`cakemail_inbox_dead_letters{subscriber="default"}`:                1,
		} {
			assert.Equal(t, want, m[name], name)
		}

		// River UI: the page, and the dead letter with its error in its API.
		page := httpGet(t, admin.URL+"/riverui/")
		assert.Contains(t, page, "<html")
		type uiJob struct {
			ID     int64  `json:"id"`
			Kind   string `json:"kind"`
			State  string `json:"state"`
			Errors []struct {
				Error string `json:"error"`
			} `json:"errors"`
		}
		var jobs struct{ Data []uiJob }
		require.NoError(t, json.Unmarshal([]byte(httpGet(t, admin.URL+"/riverui/api/jobs?state=cancelled")), &jobs))
		require.Len(t, jobs.Data, 1)
		deadID := jobs.Data[0].ID
		assert.Equal(t, "cakemail_delivery", jobs.Data[0].Kind)
		var job uiJob
		require.NoError(t, json.Unmarshal([]byte(httpGet(t, fmt.Sprintf("%s/riverui/api/jobs/%d", admin.URL, deadID))), &job))
		require.Len(t, job.Errors, 1)
		assert.Contains(t, job.Errors[0].Error, "contact_id")

		// The command, beside the running receiver.
		inboxCmd := func(args ...string) string {
			t.Helper()
			out, stderr, code := runCommand(t, bin, url, args...)
			require.Equal(t, 0, code, "cakemail-inbox %s: %s", strings.Join(args, " "), stderr)
			return out
		}
		var status struct {
			Waiting, Running, Retrying, Dead int
			CompletedLastHour                int `json:"completed_last_hour"`
		}
		require.NoError(t, json.Unmarshal([]byte(inboxCmd("status", "--json")), &status))
		assert.Equal(t, 1, status.Dead)
		assert.Equal(t, 10, status.CompletedLastHour)

		var dead []struct {
			ID        int64  `json:"id"`
			EventType string `json:"event_type"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
			FailedAt  string `json:"failed_at"`
		}
		require.NoError(t, json.Unmarshal([]byte(inboxCmd("deadletters", "list", "--json")), &dead))
		require.Len(t, dead, 1)
		assert.Equal(t, deadID, dead[0].ID)
		assert.Equal(t, "Email.Opened", dead[0].EventType)
		assert.Equal(t, 1, dead[0].Attempts)
		assert.Contains(t, dead[0].LastError, "contact_id")
		assert.NotEmpty(t, dead[0].FailedAt)
		assert.Equal(t, "[]\n", inboxCmd("deadletters", "list", "--json", "--type", "email.clicked"))
		assert.Contains(t, inboxCmd("deadletters", "list", "--type", "email.opened", "--since", "1d", "--grep", "NOT A NUMBER"), "1 dead letter\n")

		assert.Contains(t, inboxCmd("deadletters", "retry", "--all", "--dry-run"), "would retry 1 dead letter (dry run: nothing changed)")
		// A retry, even one already worked, leaves another attempt behind.
		assert.EqualValues(t, 1, ti.count(t, `SELECT count(*) FROM river_job WHERE state = 'cancelled' AND attempt = 1`), "a dry run retried")

		fixed.Store(true)
		assert.Contains(t, inboxCmd("deadletters", "retry", "--all"), "retried 1 dead letter")
		ti.waitCount(t, 1, countProcessed, sha(undecodable))
		assert.EqualValues(t, 0, ti.count(t, countDead))

		// Replay one type: its effects twice, the other type's once.
		const countClicked = `SELECT count(*) FROM processed_events WHERE event_type = 'Email.Clicked'`
		assert.Contains(t, inboxCmd("replay", "--since", "1h", "--type", "email.clicked", "--dry-run"), "would replay 6 completed deliveries of Email.Clicked")
		assert.EqualValues(t, 10, ti.count(t, `SELECT count(*) FROM river_job WHERE state = 'completed' AND attempt = 1`), "a dry run replayed")
		out, stderr, code := runCommand(t, bin, url, "replay", "--since", "1h", "--type", "email.clicked")
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, out, "replayed 6 completed deliveries of Email.Clicked")
		assert.Contains(t, stderr, "effects outside it")
		ti.waitCount(t, 12, countClicked)
		for _, body := range clicked {
			assert.EqualValues(t, 2, ti.count(t, countProcessed, sha(body)))
		}
		assert.EqualValues(t, 5, ti.count(t, `SELECT count(*) FROM processed_events WHERE event_type = 'Email.Opened'`))
		waitMetrics(t, admin.URL, func(m metricValues) bool {
			return m[`cakemail_inbox_jobs_total{outcome="completed",subscriber="default"}`] == 17 && m[`cakemail_inbox_dead_letters{subscriber="default"}`] == 0
		})
	})
}

// River UI retries a dead letter as the command does.
func TestRiverUIRetriesADeadLetter(t *testing.T) {
	t.Parallel()
	var fixed atomic.Bool
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		if !fixed.Load() {
			return fmt.Errorf("%w: handler bug", webhooks.ErrInvalidEvent)
		}
		return recordEvent(ctx, e)
	})
	ti := startInbox(t, databases[0].url(t), router)
	admin := ti.ib.AdminHandler()
	body := payload("Email.Bounced", "ui@example.com")
	require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
	ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`)
	id := ti.count(t, `SELECT id FROM river_job`)

	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/riverui/api/jobs/%d", id), nil)
	req.Host = "localhost:9091"
	admin.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), "handler bug")

	fixed.Store(true)
	w = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "/riverui/api/jobs/retry", strings.NewReader(fmt.Sprintf(`{"ids":["%d"]}`, id)))
	req.Host = "localhost:9091"
	admin.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.JSONEq(t, fmt.Sprintf(`{"status":"ok","ids":["%d"]}`, id), w.Body.String())
	ti.waitCount(t, 1, countProcessed, sha(body))
}

// metricValues are a scrape's samples by name and labels, as written in
// the text format: name{label="value"}; a histogram gives name_count.
type metricValues map[string]float64

func scrape(t require.TestingT, adminURL string) metricValues {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	resp, err := http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	values := metricValues{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				values[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				values[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				values[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return values
}

// waitMetrics scrapes until ready says the values are complete.
func waitMetrics(t *testing.T, adminURL string, ready func(metricValues) bool) metricValues {
	t.Helper()
	var m metricValues
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		m = scrape(c, adminURL)
		assert.True(c, ready(m), "metrics never got there: %v", m)
	}, 15*time.Second, 20*time.Millisecond)
	return m
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b.String())
	return b.String()
}

// buildInboxCommand builds cakemail-inbox for the test, with -race when this
// binary has it, so a cold run compiles the standard library once, not twice.
func buildInboxCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cakemail-inbox")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command("go", append(args, "./cmd/cakemail-inbox")...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// runCommand runs cakemail-inbox against the database at url.
func runCommand(t *testing.T, bin, url string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// A race-enabled binary otherwise sleeps a second on exit.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exitErr, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exitErr.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// The queue's gauges come from the database at each scrape: a delivery
// waiting since an hour ago shows in the backlog and its age.
func TestQueueGaugesReadTheDatabase(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		ctx := context.Background()
		ib, err := inbox.Open(ctx, url, recordingRouter(), inbox.WithLogger(discard()))
		require.NoError(t, err)
		t.Cleanup(func() { ib.Stop(ctx) })
		admin := httptest.NewServer(ib.AdminHandler())
		t.Cleanup(admin.Close)
		m := scrape(t, admin.URL)
		assert.Equal(t, 0.0, m[`cakemail_inbox_backlog{subscriber="default"}`])
		assert.Equal(t, 0.0, m[`cakemail_inbox_oldest_waiting_seconds{subscriber="default"}`])

		// Not started, so nothing works the job this other client inserts.
		args := inbox.NewDeliveryArgs(payload("Email.Opened", "late@example.com"), nil)
		opts := &river.InsertOpts{ScheduledAt: time.Now().Add(-time.Hour)}
		if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
			require.NoError(t, err)
			defer db.Close()
			client, err := river.NewClient(riversqlite.New(db), &river.Config{Logger: discard()})
			require.NoError(t, err)
			_, err = client.Insert(ctx, args, opts)
			require.NoError(t, err)
		} else {
			pool, err := pgxpool.New(ctx, url)
			require.NoError(t, err)
			defer pool.Close()
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: discard()})
			require.NoError(t, err)
			_, err = client.Insert(ctx, args, opts)
			require.NoError(t, err)
		}
		m = scrape(t, admin.URL)
		assert.Equal(t, 1.0, m[`cakemail_inbox_backlog{subscriber="default"}`])
		assert.InDelta(t, 3600, m[`cakemail_inbox_oldest_waiting_seconds{subscriber="default"}`], 60)
		assert.Equal(t, 0.0, m[`cakemail_inbox_dead_letters{subscriber="default"}`])
	})
}

// Every label takes a fixed set of values, all present from the start: the
// subscribers' names come from the configuration.
func TestMetricLabelsAreAFixedSet(t *testing.T) {
	t.Parallel()
	ti := startInbox(t, databases[0].url(t), nil, inbox.WithSubscriber("crm", webhooks.NewRouter()))
	admin := httptest.NewServer(ti.ib.AdminHandler())
	t.Cleanup(admin.Close)
	ti.ib.OnReject(httptest.NewRequest(http.MethodPost, "/", nil), errors.New("something new"))
	labels := map[string][]string{}
	for key := range scrape(t, admin.URL) {
		if name, label, ok := strings.Cut(key, "{"); ok {
			labels[name] = append(labels[name], strings.TrimSuffix(label, "}"))
		}
	}
	for name := range labels {
		slices.Sort(labels[name])
	}
	assert.Equal(t, map[string][]string{
		"cakemail_inbox_deliveries_total": {`outcome="accepted"`, `outcome="duplicate"`, `outcome="unavailable"`},
		"cakemail_inbox_jobs_total": {`outcome="completed",subscriber="crm"`, `outcome="completed",subscriber="default"`,
			`outcome="dead",subscriber="crm"`, `outcome="dead",subscriber="default"`,
			`outcome="failed",subscriber="crm"`, `outcome="failed",subscriber="default"`,
			`outcome="stale",subscriber="crm"`, `outcome="stale",subscriber="default"`},
		"cakemail_inbox_job_duration_seconds":   {`subscriber="crm"}_count`, `subscriber="default"}_count`},
		"cakemail_inbox_backlog":                {`subscriber="crm"`, `subscriber="default"`},
		"cakemail_inbox_oldest_waiting_seconds": {`subscriber="crm"`, `subscriber="default"`},
		"cakemail_inbox_dead_letters":           {`subscriber="crm"`, `subscriber="default"`},
		"cakemail_inbox_refused_total": {`reason="body_too_large"`, `reason="malformed_signature"`, `reason="missing_signature"`,
			`reason="not_an_event"`, `reason="older_than_window"`, `reason="other"`, `reason="signature_mismatch"`, `reason="too_new"`, `reason="too_old"`, `reason="unreadable_body"`},
	}, labels)
	assert.Equal(t, 1.0, scrape(t, admin.URL)[`cakemail_inbox_refused_total{reason="other"}`])
}
