package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

const testSecret = "receiver-test-secret-0123456789abcdef"

// recorder collects processed events and can hold the workers back.
type recorder struct {
	mu     sync.Mutex
	events []*webhooks.Event
	done   chan struct{}
	gate   chan struct{} // nil: never block
}

func newRecorder() *recorder { return &recorder{done: make(chan struct{}, 100)} }

func (r *recorder) process(_ context.Context, e *webhooks.Event) error {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.done <- struct{}{}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func newTestReceiver(t *testing.T, cfg Config, rec *recorder, logs *bytes.Buffer) (*receiver, http.Handler) {
	t.Helper()
	v, err := webhooks.NewVerifier([]string{testSecret})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rcv := newReceiver(cfg, logger, rec.process)
	rcv.Start()
	t.Cleanup(rcv.Drain)
	return rcv, rcv.Routes(v)
}

func payload(event webhooks.EventType, email string) []byte {
	return []byte(`{"event":"` + string(event) + `","account_id":7,"created_on":1700000000,"data":{"email":"` + email + `"}}`)
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func waitProcessed(t *testing.T, rec *recorder, n int) {
	t.Helper()
	for range n {
		select {
		case <-rec.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d events processed", rec.count(), n)
		}
	}
}

func TestSignedDeliveryIsProcessedOnce(t *testing.T) {
	rec := newRecorder()
	var logs bytes.Buffer
	_, h := newTestReceiver(t, Config{}, rec, &logs)

	body := payload(webhooks.EventEmailOpened, "a@example.com")
	w := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", body, testSecret))
	assert.Equal(t, http.StatusAccepted, w.Code)
	waitProcessed(t, rec, 1)

	require.Equal(t, 1, rec.count())
	assert.Equal(t, webhooks.EventEmailOpened, rec.events[0].Type)
	assert.Equal(t, 7, rec.events[0].AccountID)
	assert.NotContains(t, logs.String(), testSecret)
}

func TestDuplicateIsAcknowledgedNotReprocessed(t *testing.T) {
	rec := newRecorder()
	var logs bytes.Buffer
	_, h := newTestReceiver(t, Config{}, rec, &logs)

	body := payload(webhooks.EventEmailClicked, "b@example.com")
	first := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", body, testSecret))
	require.Equal(t, http.StatusAccepted, first.Code)
	waitProcessed(t, rec, 1)

	again := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", body, testSecret))
	assert.Equal(t, http.StatusOK, again.Code, "a duplicate must still get a 2xx, or Cakemail retries it")

	other := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", payload(webhooks.EventEmailClicked, "c@example.com"), testSecret))
	require.Equal(t, http.StatusAccepted, other.Code)
	waitProcessed(t, rec, 1)
	assert.Equal(t, 2, rec.count(), "the duplicate was processed a second time")
	assert.Contains(t, logs.String(), "duplicate acknowledged")
}

func TestBadSignatureNeverReachesHandler(t *testing.T) {
	rec := newRecorder()
	var logs bytes.Buffer
	_, h := newTestReceiver(t, Config{}, rec, &logs)

	body := payload(webhooks.EventEmailOpened, "d@example.com")
	for name, req := range map[string]*http.Request{
		"wrong secret": webhookstest.NewSignedRequest("/webhooks/cakemail", body, "not-the-secret"),
		"no signature": httptest.NewRequest(http.MethodPost, "/webhooks/cakemail", bytes.NewReader(body)),
	} {
		w := serve(h, req)
		assert.Equal(t, http.StatusUnauthorized, w.Code, name)
	}
	assert.Zero(t, rec.count())
}

func TestFullQueueAnswers503AndRetryIsProcessed(t *testing.T) {
	rec := newRecorder()
	rec.gate = make(chan struct{})
	var logs bytes.Buffer
	rcv, h := newTestReceiver(t, Config{QueueSize: 1, Workers: 1}, rec, &logs)

	// One delivery occupies the worker, one fills the queue, the third is refused.
	bodies := [][]byte{
		payload(webhooks.EventEmailOpened, "1@example.com"),
		payload(webhooks.EventEmailOpened, "2@example.com"),
		payload(webhooks.EventEmailOpened, "3@example.com"),
	}
	codes := []int{serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", bodies[0], testSecret)).Code}
	// Wait until the worker holds the first event, so the queue is empty again.
	require.Eventually(t, func() bool { return len(rcv.queue) == 0 }, 2*time.Second, time.Millisecond)
	for _, b := range bodies[1:] {
		codes = append(codes, serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", b, testSecret)).Code)
	}
	assert.Equal(t, []int{http.StatusAccepted, http.StatusAccepted, http.StatusServiceUnavailable}, codes)

	close(rec.gate)
	waitProcessed(t, rec, 2)

	// Cakemail's retry of the refused delivery is not mistaken for a duplicate.
	retry := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", bodies[2], testSecret))
	assert.Equal(t, http.StatusAccepted, retry.Code)
	waitProcessed(t, rec, 1)
	assert.Equal(t, 3, rec.count())
}

func TestDeliveryFromFakeCakemail(t *testing.T) {
	fake := webhookstest.NewServer()
	defer fake.Close()
	ctx := context.Background()
	client, err := webhooks.NewClient(webhooks.WithBaseURL(fake.URL), webhooks.WithAccessToken(fake.Token()))
	require.NoError(t, err)

	rec := newRecorder()
	var logs bytes.Buffer
	// The receiver's URL must exist before the webhook, and its secret after: route through a swap.
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer srv.Close()
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailBounced, URL: srv.URL + "/webhooks/cakemail"})
	require.NoError(t, err)
	hook, err = client.Get(ctx, hook.ID)
	require.NoError(t, err)
	v, err := webhooks.NewVerifier([]string{hook.Secret})
	require.NoError(t, err)
	rcv := newReceiver(Config{}, slog.New(slog.NewTextHandler(&logs, nil)), rec.process)
	rcv.Start()
	handler = rcv.Routes(v)

	deliveries, err := fake.Trigger(ctx, webhooks.EventEmailBounced, map[string]string{"email": "gone@example.com"})
	require.NoError(t, err)
	require.Len(t, deliveries, 1)
	assert.Equal(t, http.StatusAccepted, deliveries[0].StatusCode)
	rcv.Drain()
	require.Equal(t, 1, rec.count())
	assert.Equal(t, webhooks.EventEmailBounced, rec.events[0].Type)
	assert.NotContains(t, logs.String(), hook.Secret)

	health := serve(handler, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, health.Code)
}

func TestDrainProcessesQueuedWorkAndRefusesNew(t *testing.T) {
	rec := newRecorder()
	rec.gate = make(chan struct{})
	var logs bytes.Buffer
	rcv, h := newTestReceiver(t, Config{QueueSize: 4, Workers: 1}, rec, &logs)
	for i := range 3 {
		body := payload(webhooks.EventEmailOpened, string(rune('a'+i))+"@example.com")
		require.Equal(t, http.StatusAccepted, serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", body, testSecret)).Code)
	}
	drained := make(chan struct{})
	go func() { rcv.Drain(); close(drained) }()
	close(rec.gate)
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return")
	}
	assert.Equal(t, 3, rec.count(), "every queued delivery is processed before shutdown")
	late := serve(h, webhookstest.NewSignedRequest("/webhooks/cakemail", payload(webhooks.EventEmailOpened, "late@example.com"), testSecret))
	assert.Equal(t, http.StatusServiceUnavailable, late.Code, "a delivery during shutdown is refused so Cakemail retries it")
}

func TestSplitSecrets(t *testing.T) {
	assert.Equal(t, []string{"old", "new"}, splitSecrets(" old , ,new "))
	assert.Empty(t, splitSecrets(" , "))
}
