package webhooks_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// deliver sends payload, signed with secret, through v.Middleware(router).
func deliver(t *testing.T, v *webhooks.Verifier, router http.Handler, payload []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/cakemail", bytes.NewReader(payload))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(payload, secret))
	w := httptest.NewRecorder()
	v.Middleware(router).ServeHTTP(w, req)
	return w
}

func newTestVerifier(t *testing.T, opts ...webhooks.VerifierOption) *webhooks.Verifier {
	t.Helper()
	v, err := webhooks.NewVerifier([]string{secret}, opts...)
	require.NoError(t, err)
	return v
}

func TestRouterRoutesByCanonicalType(t *testing.T) {
	router := webhooks.NewRouter()
	var got []string
	router.On("email.opened", func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "opened:"+e.RawType)
		return nil
	})
	router.On(webhooks.EventEmailReportedAsSpam, func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "spam:"+e.RawType)
		return nil
	})
	v := newTestVerifier(t)
	for _, sent := range []string{"Email.Opened", "email.opened", "EMAIL.OPENED", "email.spam_complaint", "Email.ReportedAsSpam"} {
		w := deliver(t, v, router, []byte(`{"event":"`+sent+`","data":{}}`))
		assert.Equal(t, http.StatusOK, w.Code, sent)
	}
	assert.Equal(t, []string{
		"opened:Email.Opened", "opened:email.opened", "opened:EMAIL.OPENED",
		"spam:email.spam_complaint", "spam:Email.ReportedAsSpam",
	}, got)
}

func TestRouterUnknownTypes(t *testing.T) {
	router := webhooks.NewRouter()
	var routed, unhandled []webhooks.EventType
	router.On("Email.Teleported", func(_ context.Context, e *webhooks.Event) error {
		routed = append(routed, e.Type)
		return nil
	})
	v := newTestVerifier(t)

	// Without OnUnhandled, an event with no route is acknowledged and ignored.
	assert.Equal(t, http.StatusOK, deliver(t, v, router, []byte(`{"event":"Brand.New"}`)).Code)

	router.OnUnhandled(func(_ context.Context, e *webhooks.Event) error {
		unhandled = append(unhandled, e.Type)
		return nil
	})
	assert.Equal(t, http.StatusOK, deliver(t, v, router, []byte(`{"event":"Email.Teleported"}`)).Code)
	assert.Equal(t, http.StatusOK, deliver(t, v, router, []byte(`{"event":"Brand.New"}`)).Code)
	assert.Equal(t, http.StatusOK, deliver(t, v, router, []byte(`{"event":"Email.Clicked"}`)).Code)
	assert.Equal(t, []webhooks.EventType{"Email.Teleported"}, routed, "an unknown name is routed exactly as given")
	assert.Equal(t, []webhooks.EventType{"Brand.New", webhooks.EventEmailClicked}, unhandled)
}

func TestRouterErrorsAndPanicsAnswer500(t *testing.T) {
	var logs bytes.Buffer
	router := webhooks.NewRouter()
	router.ErrorLog = slog.New(slog.NewTextHandler(&logs, nil))
	router.On(webhooks.EventEmailBounced, func(context.Context, *webhooks.Event) error {
		return errors.New("database is down")
	})
	router.On(webhooks.EventEmailClicked, func(context.Context, *webhooks.Event) error {
		panic("a bug in the handler")
	})
	v := newTestVerifier(t)

	w := deliver(t, v, router, []byte(`{"event":"Email.Bounced"}`))
	assert.Equal(t, http.StatusInternalServerError, w.Code, "Cakemail must deliver again")
	assert.NotContains(t, w.Body.String(), "database is down", "the error stays out of the response")
	assert.Contains(t, logs.String(), "database is down")

	logs.Reset()
	w = deliver(t, v, router, []byte(`{"event":"Email.Clicked"}`))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Contains(t, logs.String(), "panicked: a bug in the handler")
	assert.Contains(t, logs.String(), "router_test.go", "the stack is reported")

	err := router.Dispatch(context.Background(), &webhooks.Event{Type: webhooks.EventEmailClicked})
	assert.ErrorIs(t, err, webhooks.ErrHandlerPanic)
	var stack interface{ Stack() []byte }
	require.ErrorAs(t, err, &stack, "a queue worker can log the panic's stack")
	assert.Contains(t, string(stack.Stack()), "router_test.go")
}

func TestRouterServeHTTPWithoutMiddleware(t *testing.T) {
	var logs bytes.Buffer
	router := webhooks.NewRouter()
	router.ErrorLog = slog.New(slog.NewTextHandler(&logs, nil))
	called := false
	router.OnUnhandled(func(context.Context, *webhooks.Event) error { called = true; return nil })
	w := httptest.NewRecorder()
	router.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"event":"Email.Opened"}`)))
	assert.Equal(t, http.StatusInternalServerError, w.Code, "an unverified body is never dispatched")
	assert.False(t, called)
	assert.Contains(t, logs.String(), "Verifier.Middleware")
}

func TestRouterOnPanicsOnDuplicates(t *testing.T) {
	router := webhooks.NewRouter()
	noop := func(context.Context, *webhooks.Event) error { return nil }
	router.On(webhooks.EventEmailOpened, noop)
	assert.PanicsWithValue(t,
		`webhooks: Router.On("email.opened"): Email.Opened already has a handler`,
		func() { router.On("email.opened", noop) }, "another spelling of the same event is a duplicate")
	assert.Panics(t, func() { router.On(webhooks.EventEmailSent, nil) })
	assert.Panics(t, func() { router.On("", noop) })
}

func TestRouterDispatchFromAWorker(t *testing.T) {
	router := webhooks.NewRouter()
	var mu sync.Mutex
	opened := 0
	router.On(webhooks.EventEmailOpened, func(context.Context, *webhooks.Event) error {
		mu.Lock()
		defer mu.Unlock()
		opened++
		return nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := webhooks.ParseEvent([]byte(`{"event":"email.opened"}`))
			assert.NoError(t, err)
			assert.NoError(t, router.Dispatch(context.Background(), e))
		}()
	}
	wg.Wait()
	assert.Equal(t, 50, opened)
	assert.Error(t, router.Dispatch(context.Background(), nil))

	// An Event built by hand with another spelling still finds its route.
	require.NoError(t, router.Dispatch(context.Background(), &webhooks.Event{Type: "EMAIL.OPENED"}))
	assert.Equal(t, 51, opened)
}

func TestHandleData(t *testing.T) {
	type opened struct {
		Email      string `json:"email"`
		CampaignID int    `json:"campaign_id"`
	}
	var got []opened
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailOpened, webhooks.HandleData(func(_ context.Context, e *webhooks.Event, d opened) error {
		got = append(got, d)
		return nil
	}))
	v := newTestVerifier(t)
	w := deliver(t, v, router, []byte(`{"event":"Email.Opened","data":{"email":"a@example.com","campaign_id":7}}`))
	assert.Equal(t, http.StatusOK, w.Code)
	w = deliver(t, v, router, []byte(`{"event":"Email.Opened"}`))
	assert.Equal(t, http.StatusOK, w.Code, "absent data leaves the struct zero")
	assert.Equal(t, []opened{{Email: "a@example.com", CampaignID: 7}, {}}, got)

	e, err := webhooks.ParseEvent([]byte(`{"event":"Email.Opened","data":{"campaign_id":"seven"}}`))
	require.NoError(t, err)
	err = router.Dispatch(context.Background(), e)
	assert.ErrorIs(t, err, webhooks.ErrInvalidEvent, "data that does not fit the struct is not retried blindly")
	assert.Len(t, got, 2, "the handler did not run")
}

// TestZeroRouter uses a Router that NewRouter did not make, as a zero
// http.ServeMux can be used: every method works on it.
func TestZeroRouter(t *testing.T) {
	ctx := context.Background()
	var empty webhooks.Router
	assert.NoError(t, empty.Dispatch(ctx, &webhooks.Event{Type: webhooks.EventEmailOpened}), "no routes: acknowledged")
	assert.ErrorIs(t, empty.Dispatch(ctx, nil), webhooks.ErrInvalidEvent)
	v := newTestVerifier(t)
	assert.Equal(t, http.StatusOK, deliver(t, v, &empty, []byte(`{"event":"Email.Opened"}`)).Code)

	var router webhooks.Router
	router.ErrorLog = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	var got []string
	router.On(webhooks.EventEmailOpened, func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "opened:"+e.RawType)
		return nil
	})
	router.OnUnhandled(func(_ context.Context, e *webhooks.Event) error {
		got = append(got, "unhandled:"+e.RawType)
		return errors.New("not stored")
	})
	assert.Panics(t, func() { router.On("email.opened", func(context.Context, *webhooks.Event) error { return nil }) }, "duplicates still panic")

	assert.Equal(t, http.StatusOK, deliver(t, v, &router, []byte(`{"event":"email.opened"}`)).Code)
	assert.Equal(t, http.StatusInternalServerError, deliver(t, v, &router, []byte(`{"event":"Email.Clicked"}`)).Code)
	require.NoError(t, router.Dispatch(ctx, &webhooks.Event{Type: "EMAIL.OPENED", RawType: "EMAIL.OPENED"}))
	assert.Error(t, router.Dispatch(ctx, &webhooks.Event{Type: webhooks.EventEmailSent, RawType: "Email.Sent"}))
	assert.Equal(t, []string{"opened:email.opened", "unhandled:Email.Clicked", "opened:EMAIL.OPENED", "unhandled:Email.Sent"}, got)

	// Its ServeHTTP, reached without the middleware, refuses as NewRouter's does.
	var bare webhooks.Router
	bare.ErrorLog = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	w := httptest.NewRecorder()
	bare.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"event":"Email.Opened"}`)))
	assert.Equal(t, http.StatusInternalServerError, w.Code)
}

func TestRouterHandlesTellsWhetherDispatchRunsAHandler(t *testing.T) {
	var zero webhooks.Router
	assert.False(t, zero.Handles(webhooks.EventEmailOpened), "a zero Router handles nothing")

	r := webhooks.NewRouter()
	r.On(webhooks.EventEmailBounced, func(context.Context, *webhooks.Event) error { return nil })
	assert.True(t, r.Handles(webhooks.EventEmailBounced))
	assert.True(t, r.Handles("email.bounced"), "any documented spelling")
	assert.False(t, r.Handles(webhooks.EventEmailOpened))

	r.OnUnhandled(func(context.Context, *webhooks.Event) error { return nil })
	assert.True(t, r.Handles(webhooks.EventEmailOpened), "OnUnhandled handles every other type")
	assert.True(t, r.Handles("Brand.New"))
}
