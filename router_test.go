package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
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

// TestRouterOnRefusesMisspelledEvents holds On to panicking for a name that is
// a misspelling of a known event, naming that event, since its route would
// never match.
func TestRouterOnRefusesMisspelledEvents(t *testing.T) {
	noop := func(context.Context, *webhooks.Event) error { return nil }
	assert.PanicsWithValue(t,
		`webhooks: Router.On("email.openned"): unknown event type, a misspelling of Email.Opened: did you mean webhooks.EventEmailOpened?`,
		func() { webhooks.NewRouter().On("email.openned", noop) })

	typos := map[string]webhooks.EventType{
		"email.openned":        webhooks.EventEmailOpened, // a letter doubled
		"Email.Opend":          webhooks.EventEmailOpened, // a letter missing
		"emial.opened":         webhooks.EventEmailOpened, // two letters swapped
		"EMAIL.OPENNED":        webhooks.EventEmailOpened,
		"email_opened":         webhooks.EventEmailOpened, // the dot lost
		"Email.Bounce":         webhooks.EventEmailBounced,
		"Email.Clikced":        webhooks.EventEmailClicked,
		"Email.ReportedAsSpan": webhooks.EventEmailReportedAsSpam,
		"Emails.Sent":          webhooks.EventEmailSent,
		"Campaign.Schedulled":  webhooks.EventCampaignScheduled,
		"campaign.canceld":     webhooks.EventCampaignCanceled,
		"contact.subscibed":    webhooks.EventContactAdded, // the CLI docs' name for it
		"email.spam_complain":  webhooks.EventEmailReportedAsSpam,
		"User.LogedIn":         webhooks.EventUserLoggedIn,
		"Email.Open":           webhooks.EventEmailOpened, // present tense
		"Email.Click":          webhooks.EventEmailClicked,
		"Email.Deliver":        webhooks.EventEmailDelivered,
		"Contact.Add":          webhooks.EventContactAdded,
		"Contact.Tag":          webhooks.EventContactTagged,
		"Email.Submit":         webhooks.EventEmailSubmitted,
	}
	for name, like := range typos {
		router := webhooks.NewRouter()
		msg := func() (msg string) {
			defer func() { msg, _ = recover().(string) }()
			router.On(webhooks.EventType(name), noop)
			return ""
		}()
		require.NotEmpty(t, msg, "%s must panic", name)
		assert.Contains(t, msg, `"`+name+`"`, "the panic names the input")
		assert.Contains(t, msg, "misspelling of "+string(like)+":", name)
		// No route was added: an event of the type it resembles is unhandled.
		unhandled := false
		router.OnUnhandled(func(context.Context, *webhooks.Event) error { unhandled = true; return nil })
		require.NoError(t, router.Dispatch(context.Background(), &webhooks.Event{Type: like}))
		assert.True(t, unhandled, name)
	}
}

// TestRouterOnRoutesRealAndNewNames holds On to accepting every known name in
// every documented spelling, and names that may be new Cakemail events.
func TestRouterOnRoutesRealAndNewNames(t *testing.T) {
	var names []string
	for _, e := range webhooks.EventTypes() {
		names = append(names, string(e), strings.ToLower(string(e)), strings.ToUpper(string(e)))
	}
	names = append(names,
		// The CLI documents' names (API-NOTES.md) and the guide's (seed 002).
		"email.sent", "email.delivered", "email.opened", "email.clicked", "email.bounced", "email.complained",
		"email.spam_complaint", "email.unsubscribed", "campaign.sent", "campaign.scheduled", "campaign.cancelled",
		"campaign.completed", "contact.subscribed", "contact.unsubscribed", "Contact.Added", "Campaign.Sent",
		"email.reported_as_spam", " Email.Opened\t",
	)
	plausibleNew := []string{
		"Email.Forwarded", "Contact.Merged", "Contact.Resubscribed", "ContactsImport.Created", "Email.Resent",
		"Email.Reopened", "Email.Unopened", "Sender.Unconfirmed", "List.Cleaned", "User.LoggedOut",
		"Campaign.Deleted", "Contact.Deleted", "Email.Deferred", "Email.Dropped", "Email.SoftBounced",
		"Email.HardBounced", "Campaign.Paused", "Campaign.Archived", "Segment.Archived", "SuppressedEmail.Updated",
		"ListLogsExport.Deleted", "CampaignLogExport.Deleted", "MFA.MethodRemoved", "Template.Created",
		"Email.Opens", "Email.Clicks", "Brand.NewEvent", "\u00a0Email.Opened",
	}
	for _, name := range append(names, plausibleNew...) {
		router := webhooks.NewRouter()
		var got []string
		require.NotPanics(t, func() {
			router.On(webhooks.EventType(name), func(_ context.Context, e *webhooks.Event) error {
				got = append(got, e.RawType)
				return nil
			})
		}, name)
		payload, err := json.Marshal(map[string]string{"event": name})
		require.NoError(t, err)
		event, err := webhooks.ParseEvent(payload)
		require.NoError(t, err)
		require.NoError(t, router.Dispatch(context.Background(), event))
		assert.Equal(t, []string{name}, got, "an event named %q reaches its route", name)
	}
}

// TestRouterOnRoutesEveryNameOfTheDocuments registers every event name the
// seed documents and API-NOTES.md print: none may be taken for a typo.
func TestRouterOnRoutesEveryNameOfTheDocuments(t *testing.T) {
	ref := referenceCopy
	files, err := filepath.Glob(filepath.Join(ref, "seeds", "*"))
	require.NoError(t, err)
	require.Len(t, files, 5, "the five seed documents")
	var nouns []string
	for _, e := range webhooks.EventTypes() {
		noun, _, _ := strings.Cut(string(e), ".")
		nouns = append(nouns, noun)
	}
	eventName := regexp.MustCompile(`(?i)\b(` + strings.Join(nouns, "|") + `)\.[a-z_]+`)
	seen := map[string]bool{}
	for _, f := range append(files, filepath.Join(ref, "API-NOTES.md")) {
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, name := range eventName.FindAllString(string(text), -1) {
			// Seed 002's table lost its cell borders: "Campaign.SentA campaign finishes sending".
			if trimmed, ok := strings.CutSuffix(strings.TrimSuffix(name, "n"), "A"); ok {
				if _, err := webhooks.ParseEventType(trimmed); err == nil {
					name = trimmed
				}
			}
			seen[name] = true
		}
	}
	require.Greater(t, len(seen), 20, "the documents name many events")
	for name := range seen {
		assert.NotPanics(t, func() {
			webhooks.NewRouter().On(webhooks.EventType(name), func(context.Context, *webhooks.Event) error { return nil })
		}, name)
	}
}
