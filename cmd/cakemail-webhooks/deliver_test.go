package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

// running is a command left running in the background, such as listen.
type running struct {
	addr           string
	stdout, stderr *testutil.SyncBuffer
	stop           func() int // cancels it, as SIGINT does, and returns its exit code
}

// start runs a command that serves until stopped, and waits until it listens.
func (c *cli) start(args ...string) *running {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	r := &running{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}}
	a := c.app("", r.stdout, r.stderr)
	a.listening = ready
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, args) }()
	select {
	case r.addr = <-ready:
	case code := <-done:
		cancel()
		c.t.Fatalf("%v exited with %d: %s", args, code, r.stderr)
	}
	r.stop = sync.OnceValue(func() int {
		cancel()
		return <-done
	})
	c.t.Cleanup(func() { r.stop() })
	return r
}

// lines returns the JSON lines listen printed.
func (r *running) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// receiver records deliveries and answers with status.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	paths   []string
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.headers = append(rc.headers, r.Header.Clone())
		rc.paths = append(rc.paths, r.URL.Path)
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, "handled by the user's receiver\n")
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() ([][]byte, []http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...), append([]http.Header(nil), rc.headers...)
}

func TestTestSendsUniqueSignedSamples(t *testing.T) {
	c := newCLI(t)
	rc := newReceiver(t, http.StatusNoContent)
	id := c.create(rc.URL+"/cakemail", "email.clicked")
	secret := c.secret(id)

	res := c.ok("test", id)
	assert.Contains(t, res.stdout, "204 No Content")
	assert.Contains(t, res.stdout, " ms")
	res = c.ok("test", id)

	res = c.ok("test", "-f", "json", id, "-e", "email.opened")
	var v deliveryResult
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	assert.Equal(t, http.StatusNoContent, v.StatusCode)
	assert.Equal(t, webhooks.EventEmailOpened, v.Event)
	assert.Equal(t, id, v.WebhookID)
	assert.GreaterOrEqual(t, v.LatencyMS, 0.0)

	bodies, headers := rc.got()
	require.Len(t, bodies, 3)
	assert.NotEqual(t, bodies[0], bodies[1], "two samples sent in the same second differ, so duplicate detection keeps both")
	for i, want := range []webhooks.EventType{webhooks.EventEmailClicked, webhooks.EventEmailClicked, webhooks.EventEmailOpened} {
		event, err := webhooks.ConstructEvent(bodies[i], headers[i].Get(webhooks.SignatureHeader), secret)
		require.NoError(t, err, "the sample is signed with the webhook's secret")
		assert.Equal(t, want, event.Type)
		var data map[string]any
		require.NoError(t, event.DecodeData(&data))
		assert.Equal(t, true, data["test"])
		assert.Equal(t, id, data["webhook_id"])
		assert.NotZero(t, event.AccountID)
	}
}

func TestTestReportsAFailingReceiver(t *testing.T) {
	c := newCLI(t)
	rc := newReceiver(t, http.StatusInternalServerError)
	id := c.create(rc.URL, "email.opened")
	res := c.run("test", id)
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stdout, "500")
	assert.Contains(t, res.stderr, "the receiver answered 500 Internal Server Error: handled by the user's receiver")

	rc.Close()
	res = c.run("test", id)
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "delivering to")
}

func TestTrigger(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-local-trigger"
	rc := newReceiver(t, http.StatusOK)

	t.Run("api shape, X-Signature in base64", func(t *testing.T) {
		res := c.ok("trigger", "email.bounced", "--url", rc.URL+"/hooks", "--secret", secret)
		assert.Regexp(t, `^Email\.Bounced delivery to http://127\.0\.0\.1:\d+/hooks: 200 OK in [0-9.]+ ms\n$`, res.stdout)
		bodies, headers := rc.got()
		body, h := bodies[len(bodies)-1], headers[len(headers)-1]
		assert.Equal(t, webhooks.Sign(body, secret), h.Get(webhooks.SignatureHeader))
		assert.Empty(t, h.Get(webhooks.LegacySignatureHeader))
		assert.Equal(t, "application/json", h.Get("Content-Type"))
		event, err := webhooks.ConstructEvent(body, h.Get(webhooks.SignatureHeader), secret)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EventEmailBounced, event.Type)
		assert.NotZero(t, event.AccountID)
		assert.NotNil(t, event.User)
		assert.WithinDuration(t, time.Now(), event.CreatedAt, time.Minute)
		var data map[string]any
		require.NoError(t, event.DecodeData(&data))
		assert.Equal(t, "hard", data["bounce_type"])
		assert.NotEmpty(t, data["email"])
	})
	t.Run("guide shape, hex in X-Cakemail-Signature, given data, json report", func(t *testing.T) {
		t.Setenv("CAKEMAIL_WEBHOOK_SECRET", secret)
		res := c.ok("trigger", "contact.subscribed", "-u", rc.URL, "--shape", "guide", "--hex", "--data", `{"email": "jane@example.com", "list_id": 7}`, "-f", "json")
		var v deliveryResult
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.Equal(t, http.StatusOK, v.StatusCode)
		assert.Equal(t, webhooks.EventContactAdded, v.Event)
		bodies, headers := rc.got()
		body, h := bodies[len(bodies)-1], headers[len(headers)-1]
		assert.Equal(t, webhooks.SignHex(body, secret), h.Get(webhooks.LegacySignatureHeader))
		assert.Empty(t, h.Get(webhooks.SignatureHeader))
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &raw))
		assert.JSONEq(t, `"contact.subscribed"`, string(raw["event"]), "the guide's spelling, as typed")
		assert.Contains(t, raw, "timestamp")
		assert.NotContains(t, raw, "created_on")
		assert.JSONEq(t, `{"email": "jane@example.com", "list_id": 7}`, string(raw["data"]))
		event, err := webhooks.ConstructEvent(body, h.Get(webhooks.LegacySignatureHeader), secret)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EventContactAdded, event.Type)
		assert.WithinDuration(t, time.Now(), event.CreatedAt, time.Minute)
	})
	t.Run("every event type makes a realistic, unique delivery", func(t *testing.T) {
		before, _ := rc.got()
		for _, event := range webhooks.EventTypes() {
			c.ok("trigger", string(event), "-u", rc.URL, "-s", secret)
		}
		bodies, headers := rc.got()
		bodies, headers = bodies[len(before):], headers[len(before):]
		require.Len(t, bodies, len(webhooks.EventTypes()))
		seen := map[string]bool{}
		for i, event := range webhooks.EventTypes() {
			got, err := webhooks.ConstructEvent(bodies[i], headers[i].Get(webhooks.SignatureHeader), secret)
			require.NoError(t, err, event)
			assert.Equal(t, event, got.Type)
			var data map[string]any
			require.NoError(t, got.DecodeData(&data))
			assert.Greater(t, len(data), 1, "%s has data beyond its sample id", event)
			assert.False(t, seen[string(bodies[i])])
			seen[string(bodies[i])] = true
		}
	})
	t.Run("a refusing receiver fails the command", func(t *testing.T) {
		refusing := newReceiver(t, http.StatusUnauthorized)
		res := c.run("trigger", "Email.Opened", "-u", refusing.URL, "-s", secret)
		assert.Equal(t, exitFailure, res.code)
		assert.Contains(t, res.stdout, "401 Unauthorized")
		assert.Contains(t, res.stderr, "the receiver answered 401 Unauthorized")
	})
	t.Run("bad input sends nothing", func(t *testing.T) {
		before, _ := rc.got()
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"trigger", "email.opend", "-u", rc.URL, "-s", secret}, `unknown event type "email.opend"; did you mean "Email.Opened"?; nothing was sent`},
			{[]string{"trigger", "-u", rc.URL, "-s", secret}, "want exactly one EVENT argument"},
			{[]string{"trigger", "email.opened", "-s", secret}, "--url URL is required"},
			{[]string{"trigger", "email.opened", "-u", "localhost:8080/hook", "-s", secret}, "-u localhost:8080/hook is not an http or https URL"},
			{[]string{"trigger", "email.opened", "-u", rc.URL}, "-s SECRET (or CAKEMAIL_WEBHOOK_SECRET) is required"},
			{[]string{"trigger", "email.opened", "-u", rc.URL, "-s", " , ,"}, "-s holds no secret, only commas"},
			{[]string{"trigger", "email.opened", "-u", rc.URL, "-s", "s1-two-secret,s2xx,s3xx,s4xx,s5xx,s6xx,s7xx,s8xx,s9xx"}, "-s holds 9 secrets; a signature header carries at most 8"},
			{[]string{"trigger", "email.opened", "-u", rc.URL, "-s", secret, "--shape", "stripe"}, `--shape must be api or guide, not "stripe"`},
			{[]string{"trigger", "email.opened", "-u", rc.URL, "-s", secret, "--data", `[1, 2]`}, "--data must be a JSON object"},
			{[]string{"trigger", "email.opened", "-u", rc.URL, "-s", secret, "-d", `{"email":`}, "-d must be a JSON object"},
		} {
			res := c.run(tc.args...)
			assert.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
			assert.Contains(t, res.stderr, tc.want, tc.args)
			assert.NotContains(t, res.stderr, "two-secret")
		}
		after, _ := rc.got()
		assert.Len(t, after, len(before))
	})
	assert.Empty(t, c.srv.Requests(), "trigger needs no account")
}

func TestListenPrintsVerifiedDeliveries(t *testing.T) {
	c := newCLI(t)
	l := c.start("listen", "--secret", "old-secret-1,new-secret-2", "--addr", "127.0.0.1:0")
	base := "http://" + l.addr
	assert.Contains(t, l.stderr.String(), "Listening on "+base+" (any path), verifying with 2 secret(s)")

	c.ok("trigger", "email.opened", "--url", base+"/webhooks/cakemail", "--secret", "new-secret-2")
	c.ok("trigger", "Contact.Added", "--url", base+"/", "--secret", "old-secret-1", "--shape", "guide", "--hex", "--data", `{"email":"jane@example.com"}`)

	lines := l.lines(t)
	require.Len(t, lines, 2, l.stdout.String())
	assert.Equal(t, "Email.Opened", lines[0]["event"])
	assert.Equal(t, float64(123), lines[0]["account"])
	created, err := time.Parse(time.RFC3339, lines[0]["created"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), created, time.Minute)
	assert.NotEmpty(t, lines[0]["data"].(map[string]any)["email"])
	assert.Len(t, lines[0], 4, "event, account, created, data")

	assert.Equal(t, "Contact.Added", lines[1]["event"])
	assert.Nil(t, lines[1]["account"], "the guide's shape has no account")
	assert.Equal(t, map[string]any{"email": "jane@example.com"}, lines[1]["data"])

	assert.Equal(t, exitOK, l.stop(), l.stderr.String())
	assert.Contains(t, l.stderr.String(), "Stopped.")
	_, err = http.Post(base+"/", "application/json", strings.NewReader("{}"))
	assert.Error(t, err, "the port is closed once listen stops")
}

func TestListenRefusesWithTheReasonAndNoMAC(t *testing.T) {
	c := newCLI(t)
	l := c.start("listen", "-s", "the-right-secret", "--addr", "127.0.0.1:0")
	base := "http://" + l.addr
	body := []byte(`{"event":"Email.Opened","account_id":1,"created_on":1700000000,"data":{}}`)
	post := func(path string, header http.Header, body []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(answer)
	}

	wrongMAC := webhooks.Sign(body, "a-wrong-secret")
	status, answer := post("/hook", http.Header{webhooks.SignatureHeader: {wrongMAC}}, body)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, answer, "the signature does not match the secret")

	res := c.run("trigger", "email.opened", "-u", base+"/other", "-s", "another-wrong-secret")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "the receiver answered 401 Unauthorized: the signature does not match the secret")

	status, _ = post("/hook", nil, body)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = post("/hook", http.Header{webhooks.SignatureHeader: {"not base64!"}}, body)
	assert.Equal(t, http.StatusUnauthorized, status)
	notEvent := []byte(`{"hello": "world"}`)
	status, _ = post("/hook", http.Header{webhooks.SignatureHeader: {webhooks.Sign(notEvent, "the-right-secret")}}, notEvent)
	assert.Equal(t, http.StatusBadRequest, status)
	resp, err := http.Get(base + "/hook")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	stderr := l.stderr.String()
	assert.Contains(t, stderr, "refused POST /hook: the signature does not match the secret: signed with another secret, or the body changed on the way (answered 401)")
	assert.Contains(t, stderr, "refused POST /other: the signature does not match the secret")
	assert.Contains(t, stderr, "refused POST /hook: no X-Signature or X-Cakemail-Signature header (answered 401)")
	assert.Contains(t, stderr, "refused POST /hook: malformed signature")
	assert.Contains(t, stderr, "refused POST /hook: signed, but not an event")
	assert.Contains(t, stderr, "refused GET /hook: method GET: Cakemail delivers with POST (answered 405)")
	for _, secretish := range []string{wrongMAC, webhooks.SignHex(body, "a-wrong-secret"), webhooks.Sign(body, "the-right-secret"), "the-right-secret", "a-wrong-secret", "another-wrong-secret"} {
		assert.NotContains(t, stderr+answer, secretish)
	}
	assert.Empty(t, l.lines(t), "nothing refused is printed as an event")
	assert.Equal(t, exitOK, l.stop())
}

func TestListenForwardsVerifiedDeliveriesUnchanged(t *testing.T) {
	c := newCLI(t)
	rc := newReceiver(t, http.StatusAccepted)
	l := c.start("listen", "-s", "fwd-secret", "--addr", "127.0.0.1:0", "--forward-to", rc.URL+"/mine")
	base := "http://" + l.addr
	assert.Contains(t, l.stderr.String(), "Forwarding verified deliveries to "+rc.URL+"/mine")

	res := c.ok("trigger", "email.clicked", "-u", base+"/from-cakemail", "-s", "fwd-secret")
	assert.Contains(t, res.stdout, "202 Accepted", "the sender gets the user's handler's answer")
	res = c.run("trigger", "email.clicked", "-u", base+"/", "-s", "wrong-fwd-secret")
	assert.Equal(t, exitFailure, res.code)

	bodies, headers := rc.got()
	require.Len(t, bodies, 1, "only the verified delivery is forwarded")
	assert.Equal(t, []string{"/mine"}, rc.paths)
	event, err := webhooks.ConstructEvent(bodies[0], headers[0].Get(webhooks.SignatureHeader), "fwd-secret")
	require.NoError(t, err, "bytes and signature arrive unchanged")
	assert.Equal(t, webhooks.EventEmailClicked, event.Type)
	assert.Equal(t, "application/json", headers[0].Get("Content-Type"))
	assert.Contains(t, headers[0].Get("User-Agent"), "cakemail-webhooks/")
	assert.Regexp(t, regexp.MustCompile(`forwarded Email\.Clicked to http://127\.0\.0\.1:\d+/mine: 202 Accepted in [0-9.]+ ms`), l.stderr.String())
	require.Len(t, l.lines(t), 1)

	rc.Close()
	res = c.run("trigger", "email.clicked", "-u", base+"/", "-s", "fwd-secret")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "502 Bad Gateway")
	assert.Contains(t, l.stderr.String(), "forwarding Email.Clicked to "+rc.URL+"/mine failed")
}

func TestListenUsage(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"listen"}, "-s SECRET (or CAKEMAIL_WEBHOOK_SECRET) is required"},
		{[]string{"listen", "-s", ",,"}, "-s holds no secret, only commas"},
		{[]string{"listen", "-s", "k3y-value", "--forward-to", "localhost:3000"}, "--forward-to localhost:3000 is not an http or https URL"},
		{[]string{"listen", "-s", "k3y-value", "extra"}, "unexpected argument"},
	} {
		res := c.run(tc.args...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		assert.Contains(t, res.stderr, tc.want, tc.args)
	}
	taken := c.start("listen", "-s", "k3y-value", "--addr", "127.0.0.1:0")
	res := c.run("listen", "-s", "k3y-value", "--addr", taken.addr)
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "cannot listen on "+taken.addr)
}

// TestTriggerSignsWithEverySecret: the list secrets --env prints signs the
// delivery once per secret, as during a rotation, and a receiver that has any
// one of them accepts it.
func TestTriggerSignsWithEverySecret(t *testing.T) {
	c := newCLI(t)
	rc := newReceiver(t, http.StatusOK)
	last := func() ([]byte, http.Header) {
		bodies, headers := rc.got()
		return bodies[len(bodies)-1], headers[len(headers)-1]
	}

	c.ok("trigger", "email.opened", "-u", rc.URL, "--secret", "old-secret-1, new-secret-2,old-secret-1")
	body, h := last()
	assert.Equal(t, webhooks.Sign(body, "old-secret-1")+","+webhooks.Sign(body, "new-secret-2"), h.Get(webhooks.SignatureHeader),
		"one value per secret, repeats dropped, in one header")
	for _, secret := range []string{"old-secret-1", "new-secret-2"} {
		assert.NoError(t, webhooks.Verify(body, h.Get(webhooks.SignatureHeader), secret), secret)
	}
	assert.ErrorIs(t, webhooks.Verify(body, h.Get(webhooks.SignatureHeader), "another-secret"), webhooks.ErrSignatureMismatch)

	t.Setenv("CAKEMAIL_WEBHOOK_SECRET", "old-secret-1,new-secret-2") // as secrets --env prints it
	c.ok("trigger", "email.clicked", "-u", rc.URL, "--hex")
	body, h = last()
	assert.Equal(t, webhooks.SignHex(body, "old-secret-1")+","+webhooks.SignHex(body, "new-secret-2"), h.Get(webhooks.LegacySignatureHeader))
	assert.NoError(t, webhooks.Verify(body, h.Get(webhooks.LegacySignatureHeader), "new-secret-2"))

	// A receiver that has only the new secret accepts it.
	l := c.start("listen", "-s", "new-secret-2", "--addr", "127.0.0.1:0")
	res := c.ok("trigger", "email.opened", "-u", "http://"+l.addr+"/", "-s", "old-secret-1,new-secret-2")
	assert.Contains(t, res.stdout, "204 No Content")
	require.Len(t, l.lines(t), 1)
}

// redirector answers every request with status and a Location on target.
func redirector(t *testing.T, status int, target string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, target, status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDeliveriesFollowNoRedirect: a signed body never goes anywhere the user
// did not name; the 3xx is the result, with where it pointed.
func TestDeliveriesFollowNoRedirect(t *testing.T) {
	c := newCLI(t)
	other := newReceiver(t, http.StatusOK)
	otherHost := strings.TrimPrefix(other.URL, "http://")

	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		first := redirector(t, status, other.URL+"/stolen?token=abc123")
		res := c.run("trigger", "email.opened", "-u", first.URL+"/hook", "-s", "redirect-secret", "-v")
		assert.Equal(t, exitFailure, res.code, status)
		line := strconv.Itoa(status) + " " + http.StatusText(status) + " (redirect to " + otherHost + ", not followed)"
		assert.Contains(t, res.stdout, "Email.Opened delivery to "+first.URL+"/hook: "+line, status)
		assert.Contains(t, res.stderr, "cakemail-webhooks: trigger: the receiver answered "+strconv.Itoa(status)+" "+http.StatusText(status)+
			", redirect to "+otherHost+", not followed: a signed delivery is never sent on to another address", status)
		assert.NotContains(t, res.stdout+res.stderr, "abc123", "the host only: not the Location's path or query")
		assert.Equal(t, 1, strings.Count(res.stderr, "debug: POST /hook"), "one exchange, no second one")
	}
	first := redirector(t, http.StatusTemporaryRedirect, other.URL+"/stolen")
	var v deliveryResult
	res := c.run("trigger", "email.opened", "-u", first.URL, "-s", "redirect-secret", "-f", "json")
	assert.Equal(t, exitFailure, res.code)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	assert.Equal(t, http.StatusTemporaryRedirect, v.StatusCode)
	assert.Equal(t, otherHost, v.RedirectHost)

	// listen --forward-to passes nothing on past a redirect either.
	l := c.start("listen", "-s", "redirect-secret", "--addr", "127.0.0.1:0", "--forward-to", first.URL+"/mine")
	res = c.run("trigger", "email.opened", "-u", "http://"+l.addr+"/", "-s", "redirect-secret")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stdout, "307 Temporary Redirect", "the sender gets the 3xx")
	assert.Contains(t, l.stderr.String(), "forwarded Email.Opened to "+first.URL+"/mine: 307 Temporary Redirect (redirect to "+otherHost+", not followed)")

	bodies, _ := other.got()
	assert.Empty(t, bodies, "the other host received nothing")
}
