package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// writes counts the requests that change something on the fake.
func writes(srv *webhookstest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method != http.MethodGet && r.Path != "/token" {
			n++
		}
	}
	return n
}

// active returns the events of url's active webhooks on the fake, with their
// rate limits, joined with " & " when an event has several.
func active(t *testing.T, client *webhooks.Client, url string) map[webhooks.EventType]string {
	t.Helper()
	got := map[webhooks.EventType]string{}
	for w, err := range client.All(context.Background(), nil) {
		require.NoError(t, err)
		if w.URL == url && w.Status == webhooks.StatusActive {
			limit := fmt.Sprintf("%d/%s", w.RateLimit, w.RateLimitPeriod)
			if prev, dup := got[w.Event]; dup {
				limit = prev + " & " + limit
			}
			got[w.Event] = limit
		}
	}
	return got
}

func actions(changes []webhooks.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, string(c.Action)+" "+string(c.Event))
	}
	return out
}

func TestApplyIsIdempotent(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	const url = "https://analytics.example.com/campaigns"
	sub := &webhooks.Subscription{URL: url, Events: []webhooks.EventType{"email.opened", "Email.Clicked", "EMAIL.BOUNCED", "email.opened"}}

	changes, err := client.Apply(ctx, sub, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"create Email.Opened", "create Email.Clicked", "create Email.Bounced"}, actions(changes))
	for _, c := range changes {
		assert.True(t, c.Applied)
		require.NotNil(t, c.Webhook)
		assert.Equal(t, url, c.Webhook.URL)
	}
	want := map[webhooks.EventType]string{
		webhooks.EventEmailOpened: "50/second", webhooks.EventEmailClicked: "50/second", webhooks.EventEmailBounced: "50/second",
	}
	assert.Equal(t, want, active(t, client, url))

	before := writes(srv)
	changes, err = client.Apply(ctx, sub, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"unchanged Email.Opened", "unchanged Email.Clicked", "unchanged Email.Bounced"}, actions(changes))
	assert.Equal(t, before, writes(srv), "a second run changes nothing")
	assert.Equal(t, want, active(t, client, url))
}

func TestApplyDryRunChangesNothing(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	const url = "https://example.com/hooks"
	_, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailSent, URL: url})
	require.NoError(t, err)
	before := writes(srv)

	changes, err := client.Apply(ctx, &webhooks.Subscription{
		URL: url, Events: []webhooks.EventType{"email.opened"}, RateLimit: 10, RateLimitPeriod: webhooks.PerMinute,
	}, &webhooks.ApplyOptions{DryRun: true, Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"create Email.Opened", "archive Email.Sent"}, actions(changes))
	for _, c := range changes {
		assert.False(t, c.Applied)
	}
	assert.Equal(t, before, writes(srv))
	assert.Equal(t, map[webhooks.EventType]string{webhooks.EventEmailSent: "50/second"}, active(t, client, url))
}

func TestApplyUpdatesUnarchivesAndPrunesOnlyThatURL(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	const url, other = "https://example.com/hooks", "https://example.com/other"
	mk := func(event webhooks.EventType, u string) *webhooks.Webhook {
		w, err := client.Create(ctx, &webhooks.CreateParams{Event: event, URL: u})
		require.NoError(t, err)
		return w
	}
	opened := mk(webhooks.EventEmailOpened, url)
	clicked := mk(webhooks.EventEmailClicked, url)
	mk(webhooks.EventEmailSent, url)
	mk(webhooks.EventEmailSent, url) // a duplicate from an earlier, non-idempotent create
	otherSent := mk(webhooks.EventEmailSent, other)
	_, err := client.Archive(ctx, clicked.ID)
	require.NoError(t, err)

	sub := &webhooks.Subscription{URL: url, Events: []webhooks.EventType{"email.opened", "email.clicked"}, RateLimit: 5, RateLimitPeriod: webhooks.PerMinute}
	changes, err := client.Apply(ctx, sub, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"update Email.Opened", "unarchive Email.Clicked", "update Email.Clicked"}, actions(changes))
	assert.Equal(t, opened.ID, changes[0].Webhook.ID, "the existing webhook is updated, not replaced")
	assert.Equal(t, clicked.ID, changes[1].Webhook.ID, "the archived webhook comes back")
	assert.Equal(t, map[webhooks.EventType]string{
		webhooks.EventEmailOpened: "5/minute", webhooks.EventEmailClicked: "5/minute", webhooks.EventEmailSent: "50/second & 50/second",
	}, active(t, client, url), "without Prune, unwanted webhooks stay")

	changes, err = client.Apply(ctx, sub, &webhooks.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"unchanged Email.Opened", "unchanged Email.Clicked", "archive Email.Sent", "archive Email.Sent"}, actions(changes))
	assert.Equal(t, map[webhooks.EventType]string{webhooks.EventEmailOpened: "5/minute", webhooks.EventEmailClicked: "5/minute"}, active(t, client, url))
	still, err := client.Get(ctx, otherSent.ID)
	require.NoError(t, err)
	assert.Equal(t, webhooks.StatusActive, still.Status, "another URL's webhooks are never touched")

	// A duplicate of a wanted event is pruned too, keeping the first.
	dup := mk(webhooks.EventEmailOpened, url)
	changes, err = client.Apply(ctx, sub, &webhooks.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"unchanged Email.Opened", "unchanged Email.Clicked", "archive Email.Opened"}, actions(changes))
	assert.Equal(t, dup.ID, changes[2].Webhook.ID)
}

// failSecondCreate answers 500 to the second POST /webhooks, as a server
// falling over in the middle of an apply would.
type failSecondCreate struct {
	mu      sync.Mutex
	creates int
}

func (f *failSecondCreate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/webhooks" {
		f.mu.Lock()
		f.creates++
		n := f.creates
		f.mu.Unlock()
		if n == 2 {
			rec := httptest.NewRecorder()
			http.Error(rec, `{"detail":[{"msg":"overloaded","type":"server_error"}]}`, http.StatusInternalServerError)
			resp := rec.Result()
			resp.Request = r
			return resp, nil
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestApplyReportsAPartialFailure(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv, webhooks.WithHTTPClient(&http.Client{Transport: &failSecondCreate{}}))
	ctx := context.Background()
	const url = "https://example.com/hooks"
	sub := &webhooks.Subscription{URL: url, Events: []webhooks.EventType{"email.opened", "email.clicked", "email.bounced"}}

	changes, err := client.Apply(ctx, sub, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, webhooks.ErrServer)
	assert.Equal(t, []string{"create Email.Opened", "create Email.Clicked", "create Email.Bounced"}, actions(changes))
	assert.True(t, changes[0].Applied)
	require.NotNil(t, changes[0].Webhook)
	assert.False(t, changes[1].Applied)
	assert.ErrorIs(t, changes[1].Err, webhooks.ErrServer)
	assert.False(t, changes[2].Applied, "nothing after the failure is attempted")
	assert.Nil(t, changes[2].Err)
	msg := err.Error()
	assert.Contains(t, msg, "create Email.Clicked failed")
	assert.Contains(t, msg, "done: create Email.Opened ("+changes[0].Webhook.ID+")")
	assert.Contains(t, msg, "not done: create Email.Bounced")
	assert.Equal(t, map[webhooks.EventType]string{webhooks.EventEmailOpened: "50/second"}, active(t, client, url))

	// Running it again finishes the job.
	changes, err = client.Apply(ctx, sub, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"unchanged Email.Opened", "create Email.Clicked", "create Email.Bounced"}, actions(changes))
}

func TestNothingIsSentForAnInvalidName(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	before := len(srv.Requests())

	for _, name := range []webhooks.EventType{"Bogus", "email.openned", ""} {
		_, err := client.Create(ctx, &webhooks.CreateParams{Event: name, URL: "https://example.com/h"})
		assert.ErrorIs(t, err, webhooks.ErrInvalidParams, name)
	}
	_, err := client.Create(ctx, &webhooks.CreateParams{Event: "Bogus", URL: "https://example.com/h"})
	assert.ErrorIs(t, err, webhooks.ErrUnknownEventType)
	assert.True(t, strings.HasPrefix(err.Error(), `webhooks: invalid parameters: unknown event type "Bogus"; did you mean`), err.Error())
	_, err = client.Apply(ctx, &webhooks.Subscription{
		URL: "https://example.com/h", Events: []webhooks.EventType{"email.opened", "Bogus", "campaign.sentt"},
	}, nil)
	require.ErrorIs(t, err, webhooks.ErrInvalidParams)
	assert.Contains(t, err.Error(), `"Bogus"`)
	assert.Contains(t, err.Error(), `"campaign.sentt"; did you mean "Campaign.Sent"?`, "every unknown name is reported at once")
	for _, sub := range []*webhooks.Subscription{
		nil,
		{URL: "https://example.com/h"},
		{URL: "http://example.com/h", Events: []webhooks.EventType{"email.opened"}},
		{URL: "https://example.com/h", Events: []webhooks.EventType{"email.opened"}, RateLimit: -1},
		{URL: "https://example.com/h", Events: []webhooks.EventType{"email.opened"}, RateLimitPeriod: "hour"},
	} {
		_, err := client.Apply(ctx, sub, nil)
		assert.ErrorIs(t, err, webhooks.ErrInvalidParams)
	}
	assert.Equal(t, before, len(srv.Requests()), "no request reached the server")
}

func TestCreateSendsTheCanonicalName(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	w, err := client.Create(context.Background(), &webhooks.CreateParams{Event: "email.opened", URL: "https://example.com/h"})
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailOpened, w.Event)
	w, err = client.Create(context.Background(), &webhooks.CreateParams{Event: "email.spam_complaint", URL: "https://example.com/h"})
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailReportedAsSpam, w.Event)
}

// receiverFor serves verified deliveries with the secrets it is given later,
// recording the event types it accepted.
type receiverFor struct {
	mu       sync.Mutex
	verifier *webhooks.Verifier
	got      []webhooks.EventType
	refused  int
}

func (rc *receiverFor) setSecrets(t *testing.T, secrets []string) {
	t.Helper()
	v, err := webhooks.NewVerifier(secrets)
	require.NoError(t, err)
	rc.mu.Lock()
	rc.verifier = v
	rc.mu.Unlock()
}

func (rc *receiverFor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	v := rc.verifier
	rc.mu.Unlock()
	event, err := v.ConstructEvent(mustRead(r), webhooks.SignatureFromHeader(r.Header))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.refused++
		http.Error(w, "refused", http.StatusUnauthorized)
		return
	}
	rc.got = append(rc.got, event.Type)
}

func mustRead(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

// withReceiver starts a fake Cakemail that delivers once per event, a client
// of it, and a receiverFor on loopback.
func withReceiver(t *testing.T) (*webhookstest.Server, *webhooks.Client, *receiverFor, string) {
	t.Helper()
	srv := newFake(t, webhookstest.WithDeliveryAttempts(1))
	rc := &receiverFor{}
	receiver := httptest.NewServer(rc)
	t.Cleanup(receiver.Close)
	return srv, fakeClient(t, srv), rc, receiver.URL
}

func TestSecretsVerifyEveryEventOfTheURL(t *testing.T) {
	srv, client, rc, receiverURL := withReceiver(t)
	ctx := context.Background()

	events := []webhooks.EventType{webhooks.EventEmailOpened, webhooks.EventEmailClicked, webhooks.EventEmailBounced}
	_, err := client.Apply(ctx, &webhooks.Subscription{URL: receiverURL, Events: events}, nil)
	require.NoError(t, err)
	secrets, err := client.Secrets(ctx, receiverURL)
	require.NoError(t, err)
	require.Len(t, secrets, 3, "one secret per event's webhook")
	rc.setSecrets(t, secrets)

	for _, e := range events {
		deliveries, err := srv.Trigger(ctx, e, map[string]any{"email": "a@example.com"})
		require.NoError(t, err)
		require.Len(t, deliveries, 1)
		assert.True(t, deliveries[0].OK(), e)
	}
	assert.Equal(t, events, rc.got)
	assert.Zero(t, rc.refused)

	_, err = client.Secrets(ctx, "https://nobody.example.com/")
	assert.ErrorIs(t, err, webhooks.ErrNotFound)
	_, err = client.Secrets(ctx, "not a url")
	assert.ErrorIs(t, err, webhooks.ErrInvalidParams)
}

func TestRotateKeepsDeliveriesVerifiable(t *testing.T) {
	srv, client, rc, receiverURL := withReceiver(t)
	ctx := context.Background()

	old, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: receiverURL, RateLimit: 7, RateLimitPeriod: webhooks.PerMinute})
	require.NoError(t, err)
	old, err = client.Get(ctx, old.ID)
	require.NoError(t, err)
	rc.setSecrets(t, []string{old.Secret})

	replacement, err := client.Rotate(ctx, old.ID)
	require.NoError(t, err)
	assert.NotEqual(t, old.ID, replacement.ID)
	assert.NotEmpty(t, replacement.Secret)
	assert.NotEqual(t, old.Secret, replacement.Secret)
	assert.Equal(t, old.Event, replacement.Event)
	assert.Equal(t, 7, replacement.RateLimit)
	assert.Equal(t, webhooks.PerMinute, replacement.RateLimitPeriod)

	// Step 1: the receiver still knows only the old secret; the new webhook's
	// deliveries are refused (and Cakemail would retry them) while the old one's pass.
	trigger := func() []webhookstest.Delivery {
		d, err := srv.Trigger(ctx, webhooks.EventEmailOpened, nil)
		require.NoError(t, err)
		return d
	}
	d := trigger()
	require.Len(t, d, 2, "during the overlap both webhooks deliver")
	assert.NotEqual(t, d[0].OK(), d[1].OK(), "only the old webhook's delivery verifies before the deploy")

	// Step 2: deploy old,new (what Secrets returns now); every delivery verifies.
	secrets, err := client.Secrets(ctx, receiverURL)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{old.Secret, replacement.Secret}, secrets)
	rc.setSecrets(t, secrets)
	for _, del := range trigger() {
		assert.True(t, del.OK())
	}

	// Step 3: archive the old webhook; deploy the new secret alone.
	_, err = client.Archive(ctx, old.ID)
	require.NoError(t, err)
	secrets, err = client.Secrets(ctx, receiverURL)
	require.NoError(t, err)
	assert.Equal(t, []string{replacement.Secret}, secrets)
	rc.setSecrets(t, secrets)
	d = trigger()
	require.Len(t, d, 1)
	assert.True(t, d[0].OK())

	_, err = client.Rotate(ctx, old.ID)
	assert.ErrorIs(t, err, webhooks.ErrInvalidParams, "an archived webhook is not rotated")
}

func TestWebhookJSONRoundTrip(t *testing.T) {
	for _, w := range []webhooks.Webhook{
		{ID: "X1", Status: webhooks.StatusActive, Event: webhooks.EventEmailOpened, URL: "https://example.com/h", RateLimit: 50, RateLimitPeriod: webhooks.PerSecond},
		{ID: "X2", Status: webhooks.StatusArchived, Event: "Brand.New", URL: "https://example.com/h", ArchivedAt: time.Unix(1700000000, 0).UTC(), RateLimit: 3, RateLimitPeriod: webhooks.PerMinute},
	} {
		withSecret := w
		withSecret.Secret = "top secret value"
		b, err := json.Marshal(withSecret)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "top secret value")
		var back webhooks.Webhook
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, w, back)
	}
	var w webhooks.Webhook
	assert.Error(t, json.Unmarshal([]byte(`{"id":"X","archived_at":"yesterday"}`), &w))
	require.NoError(t, json.Unmarshal([]byte(`{"id":"X","archived_at":null}`), &w), "the guides show the server sending null")
	assert.True(t, w.ArchivedAt.IsZero())
}

// createBarrier holds each POST /webhooks until n have arrived, one generation
// after the other, so that n overlapping runs all list before any creates, and
// all create before any lists again: the race at its worst.
type createBarrier struct {
	n     int
	mu    sync.Mutex
	seen  int
	gates map[int]chan struct{}
}

func (b *createBarrier) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/webhooks" {
		b.mu.Lock()
		gen := b.seen / b.n
		b.seen++
		if b.gates == nil {
			b.gates = map[int]chan struct{}{}
		}
		gate, ok := b.gates[gen]
		if !ok {
			gate = make(chan struct{})
			b.gates[gen] = gate
		}
		if b.seen == (gen+1)*b.n {
			close(gate)
		}
		b.mu.Unlock()
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestOverlappingAppliesConverge(t *testing.T) {
	srv := newFake(t)
	const runs, url = 5, "https://example.com/hooks"
	barrier := &createBarrier{n: runs}
	clients := make([]*webhooks.Client, runs)
	for i := range clients {
		clients[i] = fakeClient(t, srv, webhooks.WithHTTPClient(&http.Client{Transport: barrier}))
	}
	sub := &webhooks.Subscription{URL: url, Events: []webhooks.EventType{webhooks.EventEmailOpened, webhooks.EventEmailClicked}}
	results := make([][]webhooks.Change, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = clients[i].Apply(context.Background(), sub, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 2*runs, barrier.seen, "every run created both webhooks: the race happened")

	client := fakeClient(t, srv)
	want := map[webhooks.EventType]string{webhooks.EventEmailOpened: "50/second", webhooks.EventEmailClicked: "50/second"}
	assert.Equal(t, want, active(t, client, url), "one active webhook per event")

	// The one kept is the oldest, the first listed; every run named it.
	kept := map[webhooks.EventType]string{}
	for w, err := range client.All(context.Background(), &webhooks.ListOptions{WithArchived: true}) {
		require.NoError(t, err)
		if _, ok := kept[w.Event]; !ok {
			kept[w.Event] = w.ID
			assert.Equal(t, webhooks.StatusActive, w.Status, "the oldest %s webhook is kept", w.Event)
		}
	}
	archived := map[string]bool{}
	for _, changes := range results {
		assert.Equal(t, []string{"create Email.Opened", "create Email.Clicked"}, actions(changes)[:2])
		for _, ch := range changes[2:] {
			// Each run archives the duplicates still active when it lists again.
			assert.Equal(t, webhooks.ActionArchive, ch.Action)
			assert.True(t, ch.Applied)
			assert.Equal(t, kept[ch.Event], ch.DuplicateOf)
			assert.NotEqual(t, kept[ch.Event], ch.Webhook.ID)
			archived[ch.Webhook.ID] = true
		}
	}
	assert.Len(t, archived, 2*(runs-1), "every duplicate was archived by some run")

	// Converged: another run changes nothing, and Prune would archive nothing.
	before := writes(srv)
	changes, err := client.Apply(context.Background(), sub, &webhooks.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"unchanged Email.Opened", "unchanged Email.Clicked"}, actions(changes))
	assert.Equal(t, before, writes(srv))
}
