package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// writes counts the API calls that change something.
func (c *cli) writes() int {
	n := 0
	for _, r := range c.srv.Requests() {
		if r.Method != http.MethodGet {
			n++
		}
	}
	return n
}

func decodeApply(t *testing.T, out string) applyView {
	t.Helper()
	var v applyView
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v
}

func TestApplyTwiceIsOneSet(t *testing.T) {
	c := newCLI(t)
	const url = "https://example.com/hooks"
	args := []string{"apply", "-u", url, "-e", "email.opened,email.clicked", "-e", "email.bounced", "--rate-limit", "10", "--period", "minute"}
	res := c.ok(args...)
	assert.Regexp(t, `Email\.Opened\s+\S+\s+create\s+done`, res.stdout)
	assert.Contains(t, res.stdout, "3 change(s) made, 0 webhook(s) unchanged. Their secrets: cakemail-webhooks secrets -u https://example.com/hooks\n")
	hooks := c.stored()
	require.Len(t, hooks, 3)
	for _, h := range hooks {
		assert.Equal(t, 10, h.RateLimit)
		assert.Equal(t, webhooks.PerMinute, h.RateLimitPeriod)
		assert.Equal(t, url, h.URL)
	}

	writes := c.writes()
	res = c.ok(append(args, "-f", "json")...)
	v := decodeApply(t, res.stdout)
	require.Len(t, v.Changes, 3)
	for i, ch := range v.Changes {
		assert.Equal(t, webhooks.ActionNone, ch.Action)
		assert.Equal(t, hooks[i].ID, ch.WebhookID)
		assert.False(t, ch.Applied)
	}
	assert.Equal(t, writes, c.writes(), "the second run changes nothing")
	assert.Equal(t, hooks, c.stored())
	assert.Contains(t, c.ok(args...).stdout, "Nothing to change; the account already matches.")

	// create on the same URL and events agrees: nothing new.
	c.ok("create", "-u", url, "-e", "email.opened,email.clicked")
	assert.Len(t, c.stored(), 3)
}

func TestApplyDryRunChangesNothing(t *testing.T) {
	c := newCLI(t)
	const url = "https://example.com/hooks"
	c.ok("apply", "-u", url, "-e", "email.opened,email.clicked")
	archived := c.stored()[1].ID
	c.ok("archive", archived)
	before, writes := c.stored(), c.writes()

	res := c.ok("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced", "--rate-limit", "20", "--prune", "--dry-run")
	assert.Regexp(t, `Email\.Opened\s+\S+\s+update\s+would update`, res.stdout)
	assert.Regexp(t, `Email\.Clicked\s+`+archived+`\s+unarchive\s+would unarchive`, res.stdout)
	assert.Regexp(t, `Email\.Bounced\s+\(new\)\s+create\s+would create`, res.stdout)
	assert.Contains(t, res.stdout, "Dry run: 4 change(s) planned, nothing changed.")
	v := decodeApply(t, c.ok("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced", "--rate-limit", "20", "--dry-run", "-f", "json").stdout)
	assert.True(t, v.DryRun)
	assert.Len(t, v.Changes, 4)
	assert.Equal(t, writes, c.writes(), "a dry run sends only reads")
	assert.Equal(t, before, c.stored())

	// The same without --dry-run does what the plan said.
	c.ok("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced", "--rate-limit", "20")
	after := c.stored()
	require.Len(t, after, 3)
	for _, h := range after {
		assert.Equal(t, webhooks.StatusActive, h.Status)
		assert.Equal(t, 20, h.RateLimit)
	}
}

func TestApplyPrunesOnlyThatURL(t *testing.T) {
	c := newCLI(t)
	const url, other = "https://example.com/hooks", "https://example.com/other"
	c.ok("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced")
	c.ok("apply", "-u", other, "-e", "email.clicked")

	res := c.ok("apply", "-u", url, "-e", "email.opened")
	assert.Regexp(t, `Kept, although not listed: Email\.Clicked \(\S+\), Email\.Bounced \(\S+\)\. --prune archives them\.\n$`, res.stdout,
		"without --prune the others stay, and the command says so")
	assert.Len(t, decodeList(t, c.ok("list", "-f", "json").stdout).Data, 4)

	res = c.ok("apply", "-u", url, "-e", "email.opened", "--prune")
	assert.NotContains(t, res.stdout, "Kept")
	assert.Regexp(t, `Email\.Clicked\s+\S+\s+archive\s+done`, res.stdout)
	assert.Regexp(t, `Email\.Bounced\s+\S+\s+archive\s+done`, res.stdout)
	active := decodeList(t, c.ok("list", "-f", "json").stdout).Data
	require.Len(t, active, 2)
	got := map[string]webhooks.EventType{}
	for _, h := range active {
		got[h.URL] = h.Event
	}
	assert.Equal(t, map[string]webhooks.EventType{url: webhooks.EventEmailOpened, other: webhooks.EventEmailClicked}, got)

	// Wanting an archived event again brings its webhook back rather than making another.
	res = c.ok("apply", "-u", url, "-e", "email.opened,email.clicked")
	assert.Regexp(t, `Email\.Clicked\s+\S+\s+unarchive\s+done`, res.stdout)
	assert.Len(t, c.stored(), 4)
}

func TestApplyPartialFailureReportsBothParts(t *testing.T) {
	c := newCLI(t)
	const url = "https://example.com/hooks"
	posts, failAt, failWith := 0, 2, http.StatusInternalServerError
	c.beforeAPI = func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/webhooks" {
			if posts++; posts == failAt {
				c.srv.FailNext(1, failWith, 0)
			}
		}
	}
	res := c.run("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced")
	assert.Equal(t, exitFailure, res.code)
	assert.Regexp(t, `Email\.Opened\s+\S+\s+create\s+done`, res.stdout)
	assert.Regexp(t, `Email\.Clicked\s+\(new\)\s+create\s+FAILED: POST /webhooks: 500`, res.stdout)
	assert.Regexp(t, `Email\.Bounced\s+\(new\)\s+create\s+not done`, res.stdout)
	assert.Contains(t, res.stdout, "Stopped at the first failure: 1 change(s) made, 1 failed, 1 not made.")
	hooks := c.stored()
	require.Len(t, hooks, 1)
	assert.Contains(t, res.stderr, "apply: create Email.Clicked failed: POST /webhooks: 500")
	assert.Contains(t, res.stderr, "; done: create Email.Opened ("+hooks[0].ID+"); not done: create Email.Bounced\n")

	failAt, failWith = posts+1, http.StatusUnprocessableEntity
	res = c.run("apply", "-u", url, "-e", "email.opened,email.clicked,email.bounced", "-f", "json")
	v := decodeApply(t, res.stdout)
	require.Len(t, v.Changes, 3)
	assert.Equal(t, webhooks.ActionNone, v.Changes[0].Action)
	assert.Contains(t, v.Changes[1].Error, "422")
	assert.False(t, v.Changes[2].Applied)
}

func TestApplyUsage(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-e", "email.opened"}, "-u URL is required"},
		{[]string{"apply", "-u", "https://example.com"}, "-e EVENTS is required"},
		{[]string{"apply", "-u", "http://example.com", "-e", "email.opened"}, "-u: \"http://example.com\" is plain http"},
		{[]string{"apply", "-u", "https://example.com", "-e", "email.opened", "--period", "hour"}, "--period must be second or minute"},
		{[]string{"apply", "-u", "https://example.com", "-e", "email.opened", "--rate-limit", "0"}, "--rate-limit must be at least 1"},
		{[]string{"apply", "-u", "https://example.com", "-e", "email.opened", "extra"}, "unexpected argument"},
		{[]string{"secrets"}, "-u URL is required"},
		{[]string{"secrets", "-u", "example.com"}, "-u: \"example.com\" is not an absolute URL"},
		{[]string{"secrets", "-u", "https://example.com", "--env", "-f", "json"}, "pick one"},
		{[]string{"rotate"}, "want exactly one webhook id"},
	} {
		res := c.run(tc.args...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		assert.Contains(t, res.stderr, tc.want, tc.args)
	}
	assert.Empty(t, c.srv.Requests())
}

// swappableReceiver verifies deliveries with whatever secret list was last deployed to it.
type swappableReceiver struct {
	*httptest.Server
	verifier atomic.Pointer[webhooks.Verifier]
	mu       sync.Mutex
	accepted []webhooks.EventType
	refused  int
}

func newSwappableReceiver(t *testing.T) *swappableReceiver {
	rc := &swappableReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		event, err := rc.verifier.Load().ConstructEvent(body, webhooks.SignatureFromHeader(r.Header))
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil {
			rc.refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.accepted = append(rc.accepted, event.Type)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// deploy gives the receiver a CAKEMAIL_WEBHOOK_SECRET value.
func (rc *swappableReceiver) deploy(t *testing.T, list string) {
	t.Helper()
	v, err := webhooks.NewVerifier(strings.Split(list, ","))
	require.NoError(t, err)
	rc.verifier.Store(v)
}

func (rc *swappableReceiver) counts() (accepted, refused int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.accepted), rc.refused
}

func TestSecretsVerifyEveryEventOfTheURL(t *testing.T) {
	c := newCLI(t)
	events := []webhooks.EventType{webhooks.EventEmailOpened, webhooks.EventEmailClicked, webhooks.EventContactAdded}
	l := c.start("listen", "--addr", "127.0.0.1:0", "-s", "placeholder-secret")
	url := "http://" + l.addr + "/webhooks/cakemail"
	c.ok("apply", "-u", url, "-e", "email.opened,email.clicked,contact.added")
	c.ok("create", "-u", "https://example.com/elsewhere", "-e", "email.bounced")
	require.Equal(t, exitOK, l.stop())

	res := c.ok("secrets", "-u", url)
	list := strings.TrimSpace(res.stdout)
	secrets := strings.Split(list, ",")
	require.Len(t, secrets, 3, "one secret per webhook of that URL, none of the other URL's")
	for _, h := range c.stored() {
		if h.URL == url {
			assert.Contains(t, secrets, c.secret(h.ID))
		} else {
			assert.NotContains(t, secrets, c.secret(h.ID))
		}
	}
	assert.Empty(t, res.stderr, "the secrets go to stdout only")
	assert.Equal(t, "CAKEMAIL_WEBHOOK_SECRET="+list+"\n", c.ok("secrets", "-u", url, "--env").stdout)
	var v secretsView
	require.NoError(t, json.Unmarshal([]byte(c.ok("secrets", "-u", url, "-f", "json").stdout), &v))
	assert.Equal(t, secrets, v.Secrets)

	// A listener given the list, on the webhooks' address, verifies a delivery of each event.
	port := strings.TrimPrefix(l.addr, "127.0.0.1:")
	t.Setenv("CAKEMAIL_WEBHOOK_SECRET", list)
	l = c.start("listen", "--addr", "127.0.0.1:"+port)
	for _, event := range events {
		deliveries, err := c.srv.Trigger(context.Background(), event, map[string]any{"email": "jane@example.com"})
		require.NoError(t, err)
		require.Len(t, deliveries, 1, event)
		assert.True(t, deliveries[0].OK(), "%s: %d %s", event, deliveries[0].StatusCode, deliveries[0].Err)
	}
	lines := l.lines(t)
	require.Len(t, lines, 3)
	for i, event := range events {
		assert.Equal(t, string(event), lines[i]["event"])
		assert.Equal(t, float64(1), lines[i]["account"])
	}
	assert.NotContains(t, l.stderr.String(), "refused")

	res = c.run("secrets", "-u", "https://example.com/nobody")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "no active webhook delivers to https://example.com/nobody")
}

func TestRotateKeepsDeliveriesVerifiable(t *testing.T) {
	c := newCLI(t)
	rc := newSwappableReceiver(t)
	id := c.create(rc.URL+"/hook", "email.opened")
	oldSecret := c.secret(id)
	rc.deploy(t, oldSecret)
	trigger := func() (delivered int) {
		t.Helper()
		deliveries, err := c.srv.Trigger(context.Background(), webhooks.EventEmailOpened, map[string]any{"email": "jane@example.com"})
		require.NoError(t, err)
		for _, d := range deliveries {
			assert.True(t, d.OK(), "every delivery is verified throughout: %+v", d)
		}
		return len(deliveries)
	}
	assert.Equal(t, 1, trigger())

	res := c.ok("rotate", id)
	hooks := c.stored()
	require.Len(t, hooks, 2)
	newID := hooks[1].ID
	newSecret := c.secret(newID)
	assert.NotEqual(t, oldSecret, newSecret)
	assert.Equal(t, webhooks.EventEmailOpened, hooks[1].Event)
	assert.Equal(t, hooks[0].URL, hooks[1].URL)
	assert.Contains(t, res.stdout, "Webhook "+newID+" replaces "+id)
	assert.Contains(t, res.stdout, newSecret)
	deploy := regexp.MustCompile(`Deploy to the receiver:\s+CAKEMAIL_WEBHOOK_SECRET=(\S+)`).FindStringSubmatch(res.stdout)
	require.NotNil(t, deploy, res.stdout)
	assert.Equal(t, oldSecret+","+newSecret, deploy[1])
	assert.Contains(t, res.stdout, "cakemail-webhooks archive "+id)
	assert.NotContains(t, res.stderr, newSecret)

	// With the printed list deployed, both webhooks' deliveries pass during the overlap.
	rc.deploy(t, deploy[1])
	assert.Equal(t, 2, trigger(), "during the overlap both webhooks deliver")
	c.ok("archive", id)
	assert.Equal(t, 1, trigger())
	rc.deploy(t, strings.TrimSpace(c.ok("secrets", "-u", rc.URL+"/hook").stdout))
	assert.Equal(t, 1, trigger())
	_, refused := rc.counts()
	assert.Zero(t, refused)

	// --archive-old does both steps, and the list to deploy holds only the new secret.
	res = c.ok("rotate", newID, "--archive-old", "-f", "json")
	var v rotateView
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	assert.True(t, v.OldArchived)
	assert.Equal(t, newID, v.Old.ID)
	assert.Equal(t, webhooks.StatusArchived, v.Old.Status)
	assert.Empty(t, v.Old.Secret)
	assert.Equal(t, []string{v.Secret}, v.Secrets)
	assert.Equal(t, c.secret(v.New.ID), v.Secret)
	rc.deploy(t, strings.Join(v.Secrets, ","))
	assert.Equal(t, 1, trigger())

	res = c.run("rotate", id)
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "is archived")
	res = c.run("rotate", "no-such-webhook")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "404")
}

// TestOverlappingApplyRunsConverge runs apply five times at once for one URL,
// all listing before any creates (the worst case), then again with the
// requests jittered: each time every event ends with exactly one active webhook.
func TestOverlappingApplyRunsConverge(t *testing.T) {
	c := newCLI(t)
	const runs = 5
	var mu sync.Mutex
	posts, gates := 0, map[int]chan struct{}{}
	barrier := true
	c.beforeAPI = func(r *http.Request) {
		mu.Lock()
		if !barrier {
			mu.Unlock()
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/webhooks" {
			mu.Unlock()
			return
		}
		gen := posts / runs
		posts++
		gate, ok := gates[gen]
		if !ok {
			gate = make(chan struct{})
			gates[gen] = gate
		}
		if posts == (gen+1)*runs {
			close(gate)
		}
		mu.Unlock()
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		}
	}
	applyAll := func(url string) []result {
		results := make([]result, runs)
		var wg sync.WaitGroup
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var stdout, stderr bytes.Buffer
				code := c.app("", &stdout, &stderr).run(context.Background(), []string{"apply", "-u", url, "-e", "email.opened,email.clicked"})
				results[i] = result{code, stdout.String(), stderr.String()}
			}()
		}
		wg.Wait()
		return results
	}
	activeByEvent := func(url string) map[webhooks.EventType][]string {
		got := map[webhooks.EventType][]string{}
		for _, h := range c.stored() {
			if h.URL == url && h.Status == webhooks.StatusActive {
				got[h.Event] = append(got[h.Event], h.ID)
			}
		}
		return got
	}

	const url = "https://example.com/hooks"
	results := applyAll(url)
	require.Equal(t, 2*runs, posts, "every run created both webhooks: the race happened")
	active := activeByEvent(url)
	require.Len(t, active, 2)
	for event, ids := range active {
		require.Len(t, ids, 1, "%s has exactly one active webhook", event)
	}
	oldest := map[webhooks.EventType]string{}
	for _, h := range c.stored() {
		if _, ok := oldest[h.Event]; !ok {
			oldest[h.Event] = h.ID
		}
	}
	assert.Equal(t, oldest[webhooks.EventEmailOpened], active[webhooks.EventEmailOpened][0], "the oldest is kept")
	dup := regexp.MustCompile(`archive\s+done \(duplicate of (\S+)\)`)
	for _, res := range results {
		c.checkOutput(res)
		require.Equal(t, exitOK, res.code, res.stderr)
		for _, m := range dup.FindAllStringSubmatch(res.stdout, -1) {
			assert.Contains(t, []string{active[webhooks.EventEmailOpened][0], active[webhooks.EventEmailClicked][0]}, m[1], res.stdout)
		}
		assert.NotContains(t, res.stdout, "not listed")
	}
	n := 0
	for _, res := range results {
		if strings.Contains(res.stdout, "duplicate webhook(s) archived: each event keeps its oldest webhook, whichever run made it.") {
			n++
		}
	}
	assert.Positive(t, n, "the runs that archived duplicates say so")

	// Converged: one more run changes nothing and notes nothing.
	res := c.ok("apply", "-u", url, "-e", "email.opened,email.clicked")
	assert.Equal(t, "EVENT", res.stdout[:5])
	assert.Contains(t, res.stdout, "Nothing to change; the account already matches.\n")
	assert.NotContains(t, res.stdout, "Kept")

	mu.Lock()
	barrier = false
	mu.Unlock()
	for round := range 3 {
		other := fmt.Sprintf("https://example.com/jittered-%d", round)
		for _, res := range applyAll(other) {
			require.Equal(t, exitOK, res.code, res.stderr)
		}
		for event, ids := range activeByEvent(other) {
			assert.Len(t, ids, 1, "round %d: %s", round, event)
		}
	}
}

// TestApplyNamesDuplicatesItKeeps: without --prune, duplicates made earlier
// (by a rotation, say) are kept, and the note calls them duplicates, not
// unlisted events.
func TestApplyNamesDuplicatesItKeeps(t *testing.T) {
	c := newCLI(t)
	const url = "https://example.com/hooks"
	c.ok("apply", "-u", url, "-e", "email.opened,email.clicked")
	first := c.stored()[0].ID
	c.ok("rotate", first)
	second := c.stored()[2].ID

	res := c.ok("apply", "-u", url, "-e", "email.opened")
	assert.Contains(t, res.stdout, "Kept, although not listed: Email.Clicked (")
	assert.Contains(t, res.stdout, "Kept, although they repeat a listed event: Email.Opened ("+second+", a duplicate of "+first+"). --prune archives them.\n")
	assert.NotContains(t, res.stdout, "Email.Opened ("+second+")")
	assert.Len(t, activeIDs(c), 3, "nothing archived without --prune")

	res = c.ok("apply", "-u", url, "-e", "email.opened", "--prune")
	assert.Regexp(t, `Email\.Opened\s+`+second+`\s+archive\s+done \(duplicate of `+first+`\)`, res.stdout)
	assert.Equal(t, []string{first}, activeIDs(c))
}

func activeIDs(c *cli) []string {
	var ids []string
	for _, h := range c.stored() {
		if h.Status == webhooks.StatusActive {
			ids = append(ids, h.ID)
		}
	}
	return ids
}
