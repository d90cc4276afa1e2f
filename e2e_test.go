package webhooks_test

import (
	"context"
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

// These tests run the client end to end against webhookstest, the in-memory Cakemail.

func fakeClient(t *testing.T, srv *webhookstest.Server, opts ...webhooks.Option) *webhooks.Client {
	t.Helper()
	base := []webhooks.Option{
		webhooks.WithBaseURL(srv.URL),
		webhooks.WithCredentials(webhookstest.DefaultUsername, webhookstest.DefaultPassword),
		webhooks.WithRetryWait(time.Millisecond, 10*time.Millisecond),
	}
	c, err := webhooks.NewClient(append(base, opts...)...)
	require.NoError(t, err)
	return c
}

func newFake(t *testing.T, opts ...webhookstest.ServerOption) *webhookstest.Server {
	t.Helper()
	srv := webhookstest.NewServer(opts...)
	t.Cleanup(srv.Close)
	return srv
}

func TestEndToEndLifecycle(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()

	var mu sync.Mutex
	var got []*webhooks.Event
	receiver := httptest.NewServer(http.NotFoundHandler())
	defer receiver.Close()

	created, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: receiver.URL + "/hooks"})
	require.NoError(t, err)
	assert.Equal(t, webhooks.StatusActive, created.Status)
	assert.Empty(t, created.Secret, "only Get returns the secret")
	assert.Equal(t, 50, created.RateLimit, "the server's default applies")

	hook, err := client.Get(ctx, created.ID)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(hook.Secret), 32)
	verifier, err := webhooks.NewVerifier([]string{hook.Secret})
	require.NoError(t, err)
	receiver.Config.Handler = verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := webhooks.EventFromContext(r.Context())
		mu.Lock()
		got = append(got, event)
		mu.Unlock()
	}))

	deliveries, err := srv.Trigger(ctx, webhooks.EventEmailOpened, map[string]string{"email": "jane@example.com"})
	require.NoError(t, err)
	require.Len(t, deliveries, 1)
	assert.Equal(t, http.StatusOK, deliveries[0].StatusCode)
	mu.Lock()
	require.Len(t, got, 1)
	assert.Equal(t, webhooks.EventEmailOpened, got[0].Type)
	assert.Equal(t, webhookstest.DefaultAccountID, got[0].AccountID)
	var data struct{ Email string }
	require.NoError(t, got[0].DecodeData(&data))
	assert.Equal(t, "jane@example.com", data.Email)
	mu.Unlock()

	updated, err := client.Update(ctx, hook.ID, &webhooks.UpdateParams{RateLimit: webhooks.Ptr(5), RateLimitPeriod: webhooks.Ptr(webhooks.PerMinute)})
	require.NoError(t, err)
	assert.Equal(t, 5, updated.RateLimit)
	assert.Equal(t, webhooks.PerMinute, updated.RateLimitPeriod)
	assert.Equal(t, hook.URL, updated.URL, "fields not sent stay as they were")

	archived, err := client.Archive(ctx, hook.ID)
	require.NoError(t, err)
	assert.Equal(t, webhooks.StatusArchived, archived.Status)
	assert.WithinDuration(t, time.Now(), archived.ArchivedAt, time.Minute)
	deliveries, err = srv.Trigger(ctx, webhooks.EventEmailOpened, nil)
	require.NoError(t, err)
	assert.Empty(t, deliveries, "an archived webhook gets nothing")

	list, err := client.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, list.Webhooks, "archived webhooks are hidden by default")
	list, err = client.List(ctx, &webhooks.ListOptions{WithArchived: true, WithCount: true})
	require.NoError(t, err)
	require.Len(t, list.Webhooks, 1)
	assert.Equal(t, 1, list.Count)

	unarchived, err := client.Unarchive(ctx, hook.ID)
	require.NoError(t, err)
	assert.Equal(t, webhooks.StatusActive, unarchived.Status)
	assert.True(t, unarchived.ArchivedAt.IsZero())
}

func TestEndToEndAllWalksEveryPage(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 23 {
		event := webhooks.EventTypes()[i%10]
		h, err := client.Create(ctx, &webhooks.CreateParams{Event: event, URL: "https://example.com/hooks"})
		require.NoError(t, err)
		want[h.ID] = true
	}
	_, err := client.Archive(ctx, firstKey(want))
	require.NoError(t, err)

	for _, opts := range []*webhooks.ListOptions{{PerPage: 5, WithArchived: true}, {PerPage: 5, WithArchived: true, WithCount: true}} {
		seen := map[string]bool{}
		for h, err := range client.All(ctx, opts) {
			require.NoError(t, err)
			assert.False(t, seen[h.ID], "no webhook twice")
			seen[h.ID] = true
		}
		assert.Equal(t, want, seen)
		assert.Equal(t, 0, opts.Page, "the caller's options are left alone")
	}

	active := 0
	for _, err := range client.All(ctx, &webhooks.ListOptions{PerPage: 7}) {
		require.NoError(t, err)
		active++
	}
	assert.Equal(t, 22, active)

	before := len(srv.Requests())
	for range client.All(ctx, &webhooks.ListOptions{PerPage: 5}) {
		break
	}
	assert.Equal(t, before+1, len(srv.Requests()), "breaking out fetches no further page")
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

func TestEndToEndErrorsCarryTheServersDetail(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()

	_, err := client.Get(ctx, "does-not-exist")
	assert.ErrorIs(t, err, webhooks.ErrNotFound)
	var apiErr *webhooks.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	assert.Equal(t, "/webhooks/does-not-exist", apiErr.Path)

	// Campaign.Sent is named in Cakemail's guide but is not an event of the API.
	_, err = client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventCampaignSent, URL: "https://example.com/hooks"})
	assert.ErrorIs(t, err, webhooks.ErrValidation)
	require.ErrorAs(t, err, &apiErr)
	require.NotEmpty(t, apiErr.Details)
	assert.Equal(t, []string{"body", "event"}, apiErr.Details[0].Loc)
	assert.Contains(t, err.Error(), "422 Unprocessable Entity: body.event:")

	bad, err := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken("revoked"))
	require.NoError(t, err)
	_, err = bad.List(ctx, nil)
	assert.ErrorIs(t, err, webhooks.ErrUnauthorized)
	assert.NotContains(t, err.Error(), "revoked")
}

func TestEndToEndRetriesAndCreateOnce(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailClicked, URL: "https://example.com/hooks"})
	require.NoError(t, err)

	srv.FailNext(2, http.StatusServiceUnavailable, 0)
	got, err := client.Get(ctx, hook.ID)
	require.NoError(t, err, "a read survives two 503s with three retries")
	assert.Equal(t, hook.ID, got.ID)

	srv.FailNext(1, http.StatusInternalServerError, 0)
	_, err = client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailClicked, URL: "https://example.com/other"})
	assert.ErrorIs(t, err, webhooks.ErrServer)
	list, err := client.List(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, list.Webhooks, 1, "no second webhook from a retried create")

	srv.FailNext(1, http.StatusTooManyRequests, 0)
	_, err = client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailClicked, URL: "https://example.com/other"})
	require.NoError(t, err, "a 429 means the create was not done, so it is retried")

	srv.FailNext(10, http.StatusBadGateway, 0)
	_, err = client.Get(ctx, hook.ID)
	assert.ErrorIs(t, err, webhooks.ErrServer, "after the last try, the last response's error")
}

// TestEndToEndTimeoutIsPerAttempt stalls the fake: a stalled read is cut off
// and tried again, a stalled create is cut off and not repeated.
func TestEndToEndTimeoutIsPerAttempt(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv, webhooks.WithTimeout(200*time.Millisecond))
	ctx := context.Background()
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailClicked, URL: "https://example.com/hooks"})
	require.NoError(t, err)

	srv.DelayNext(1, 5*time.Second)
	got, err := client.Get(ctx, hook.ID)
	require.NoError(t, err, "the stalled attempt times out; the retry answers")
	assert.Equal(t, hook.ID, got.ID)

	srv.DelayNext(1, 5*time.Second)
	_, err = client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailClicked, URL: "https://example.com/other"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(WithTimeout)")
	creates := 0
	for _, r := range srv.Requests() {
		if r.Method == "POST" && r.Path == "/webhooks" {
			creates++
		}
	}
	assert.Equal(t, 2, creates, "the timed-out create was sent once")
}

func TestEndToEndTokensAreRenewed(t *testing.T) {
	srv := newFake(t)
	client := fakeClient(t, srv)
	ctx := context.Background()
	_, err := client.List(ctx, nil)
	require.NoError(t, err)

	srv.ExpireTokens()
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = client.List(ctx, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	logins := 0
	for _, r := range srv.Requests() {
		if r.Path == "/token" {
			logins++
		}
	}
	assert.Equal(t, 2, logins, "one login, then one renewal however many calls saw the expiry")
}

func TestEndToEndAccounts(t *testing.T) {
	srv := newFake(t)
	sub := srv.AddAccount(webhookstest.DefaultUsername)
	stranger := srv.AddUser("other@example.com", "pw")
	client := fakeClient(t, srv)
	ctx := context.Background()

	_, err := client.ForAccount(sub).Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: "https://example.com/sub"})
	require.NoError(t, err)
	own, err := client.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, own.Webhooks, "the sub-account's webhook is not in the main account")
	inSub, err := client.ForAccount(sub).List(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, inSub.Webhooks, 1)

	_, err = client.ForAccount(stranger).List(ctx, nil)
	assert.ErrorIs(t, err, webhooks.ErrForbidden, "a user sees only the accounts it owns")

	_, err = client.ForAccount(0).List(ctx, nil)
	assert.ErrorIs(t, err, webhooks.ErrInvalidParams)
}

func TestEndToEndMFA(t *testing.T) {
	srv := newFake(t)
	srv.RequireMFA(webhookstest.DefaultUsername, "424242")
	client := fakeClient(t, srv)
	ctx := context.Background()

	_, err := client.List(ctx, nil)
	var mfa *webhooks.MFARequiredError
	require.ErrorAs(t, err, &mfa)
	require.NotEmpty(t, mfa.Challenge)

	assert.Error(t, client.CompleteMFA(ctx, mfa.Challenge, "000000"))
	_, err = client.List(ctx, nil)
	require.ErrorAs(t, err, &mfa, "a wrong code leaves the client logged out")

	require.NoError(t, client.CompleteMFA(ctx, mfa.Challenge, "424242"))
	_, err = client.List(ctx, nil)
	assert.NoError(t, err)
}
