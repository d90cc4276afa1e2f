package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// TestSeedLines runs the lines of Cakemail's CLI reference (seed 000) as typed
// after alias cakemail=cakemail-webhooks, with the fake's ids for 301 and 303.
func TestSeedLines(t *testing.T) {
	c := newCLI(t)
	getJSON := func(id string) webhookView {
		t.Helper()
		var v webhookView
		require.NoError(t, json.Unmarshal([]byte(c.ok("webhooks", "get", id, "-f", "json").stdout), &v))
		return v
	}

	// Create webhook for email events.
	res := c.ok("webhooks", "create", "-u", "https://api.example.com/webhook", "-e", "email.sent,email.opened,email.clicked", "-n", "Email Events")
	assert.Contains(t, res.stderr, "warning: -n ignored")
	assert.Contains(t, res.stdout, "3 webhook(s) created. Their secrets: cakemail-webhooks secrets -u https://api.example.com/webhook\n")
	hooks := c.stored()
	require.Len(t, hooks, 3)
	id301 := hooks[0].ID

	// Create webhook with secret: the API generates secrets; the refusal names every unsupported flag and sends nothing.
	before := c.requests()
	res = c.run("webhooks", "create", "-u", "https://api.example.com/secure-webhook", "-e", "email.sent,email.bounced", "-n", "Secure Webhook", "-s", "my_secret_key_12345")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "-s: Cakemail generates each webhook's secret; drop it, then read the secrets with: cakemail-webhooks secrets -u URL")
	assert.NotContains(t, res.stderr, "my_secret_key_12345")
	assert.Equal(t, before, c.requests())

	// Bounce handler: email.complained is Email.ReportedAsSpam.
	res = c.ok("webhooks", "create", "-u", "https://app.example.com/bounces", "-e", "email.bounced,email.complained", "-n", "Bounce Handler", "-f", "json")
	bounce := decodeList(t, res.stdout)
	require.Len(t, bounce.Data, 2)
	assert.Equal(t, webhooks.EventEmailReportedAsSpam, bounce.Data[1].Event)
	id303 := bounce.Data[0].ID

	// Campaign webhook: both names are the guide's Campaign.Sent, which the API refuses: refused here, nothing sent.
	before = c.requests()
	res = c.run("webhooks", "create", "-u", "https://analytics.example.com/campaigns", "-e", "campaign.sent,campaign.completed", "-n", "Campaign Analytics")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, `event types the API does not accept: "campaign.sent" (Campaign.Sent, named only in Cakemail's guide: the API refuses it)`)
	assert.Equal(t, before, c.requests())

	// List, with pagination, as JSON, and the jq filter for active ones.
	res = c.ok("webhooks", "list")
	assert.Contains(t, res.stdout, "5 active webhook(s); page 1.")
	res = c.ok("webhooks", "list", "-l", "10", "-p", "1")
	assert.Len(t, strings.Split(strings.TrimSpace(res.stdout), "\n"), 7)
	list := decodeList(t, c.ok("webhooks", "list", "-f", "json").stdout)
	assert.Equal(t, 5, list.Count)
	for _, h := range list.Data {
		assert.Equal(t, webhooks.StatusActive, h.Status, "select(.status == \"active\")")
		assert.Len(t, h.Events, 1)
	}

	// Get: details, .url, .events, .status, .secret.
	res = c.ok("webhooks", "get", id301)
	assert.Contains(t, res.stdout, "https://api.example.com/webhook")
	v := getJSON(id301)
	assert.Equal(t, "https://api.example.com/webhook", v.URL)
	assert.Equal(t, []webhooks.EventType{webhooks.EventEmailSent}, v.Events)
	assert.Equal(t, webhooks.StatusActive, v.Status)
	assert.Equal(t, c.secret(id301), v.Secret)

	// Update the URL works; events, name and secret say what to do instead.
	res = c.ok("webhooks", "update", id301, "-u", "https://api.example.com/new-webhook")
	assert.Contains(t, res.stdout, "Webhook "+id301+" updated.")
	assert.Equal(t, "https://api.example.com/new-webhook", getJSON(id301).URL)
	before = c.requests()
	res = c.run("webhooks", "update", id301, "-e", "email.sent,email.opened,email.clicked,email.bounced")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "cakemail-webhooks apply -u URL -e EVENTS --prune")
	res = c.run("webhooks", "update", id301, "-n", "Main Email Events Handler")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "warning: -n ignored")
	res = c.run("webhooks", "update", id301, "-s", "new_secret_key_67890")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "cakemail-webhooks rotate "+id301)
	res = c.run("webhooks", "update", id301, "-u", "https://api.example.com/webhook-v2", "-e", "email.sent,email.bounced", "-n", "Email Events v2", "-s", "secure_key_2024")
	assert.Equal(t, exitUsage, res.code)
	assert.Regexp(t, regexp.MustCompile(`-e: .*; -s: `), res.stderr, "both refusals in one message")
	assert.Equal(t, before, c.requests())

	// Archive, check, unarchive, check (workflow 4).
	res = c.ok("webhooks", "archive", id303)
	assert.Contains(t, res.stdout, "Webhook "+id303+" archived.")
	assert.Equal(t, webhooks.StatusArchived, getJSON(id303).Status)
	res = c.ok("webhooks", "list")
	assert.Contains(t, res.stdout, "1 archived webhook(s) not shown; add --archived to list them.")
	res = c.ok("webhooks", "unarchive", id303)
	assert.Contains(t, res.stdout, "Webhook "+id303+" unarchived.")
	assert.Equal(t, webhooks.StatusActive, getJSON(id303).Status)

	// Troubleshooting's create is one the account already has at that URL: reported, not created again.
	c.ok("webhooks", "update", id301, "-u", "https://api.example.com/webhook")
	before = len(c.stored())
	res = c.ok("webhooks", "create", "-u", "https://api.example.com/webhook", "-e", "email.sent", "-n", "Test")
	assert.Contains(t, res.stderr, "Webhook "+id301+" already delivers Email.Sent to this URL: not created again.")
	assert.Len(t, c.stored(), before)

	// Delete, as seeds 001 and 004 type it: the API cannot delete, so it archives.
	res = c.ok("webhooks", "delete", id303, "--force")
	assert.Contains(t, res.stderr, "Cakemail cannot delete webhooks: webhook "+id303+" is archived instead")
	assert.Contains(t, res.stderr, "To bring it back: cakemail-webhooks unarchive "+id303)
	assert.Contains(t, res.stdout, "Webhook "+id303+" archived.")
	assert.Equal(t, webhooks.StatusArchived, getJSON(id303).Status)
}

func TestRepeatedEventsAccumulate(t *testing.T) {
	c := newCLI(t)
	res := c.ok("create", "-u", "https://example.com/hooks", "-e", "email.sent", "-e", "email.opened", "--events", "email.clicked,email.sent", "-f", "json")
	v := decodeList(t, res.stdout)
	require.Len(t, v.Data, 3)
	for i, want := range []webhooks.EventType{webhooks.EventEmailSent, webhooks.EventEmailOpened, webhooks.EventEmailClicked} {
		assert.Equal(t, want, v.Data[i].Event)
	}
}

func TestFormatIsCaseInsensitive(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	for _, f := range []string{"JSON", "Json", "json"} {
		var v webhookView
		require.NoError(t, json.Unmarshal([]byte(c.ok("get", id, "-f", f).stdout), &v), f)
		assert.Equal(t, id, v.ID)
	}
	assert.Contains(t, c.ok("get", id, "--format=TABLE").stdout, "Rate limit:")
}

func TestCreateTwiceMakesNoDuplicates(t *testing.T) {
	c := newCLI(t)
	args := []string{"create", "-u", "https://example.com/hooks", "-e", "email.opened,email.clicked", "--rate-limit", "5", "-f", "json"}
	first := decodeList(t, c.ok(args...).stdout)
	require.Len(t, first.Data, 2)

	res := c.ok(args...)
	second := decodeList(t, res.stdout)
	assert.Equal(t, first.Data, second.Data, "the second run shows the same webhooks")
	assert.Contains(t, res.stderr, "already delivers Email.Opened to this URL: not created again")
	assert.Contains(t, res.stderr, "already delivers Email.Clicked to this URL: not created again")
	for _, r := range c.srv.Requests()[4:] {
		assert.NotEqual(t, http.MethodPost, r.Method, "nothing created the second time")
	}

	// One more event: only that one is created.
	res = c.ok("create", "-u", "https://example.com/hooks", "-e", "email.opened,email.clicked,email.bounced")
	assert.Contains(t, res.stdout, "1 webhook(s) created, 2 already there.")
	assert.Len(t, c.stored(), 3)

	// An archived webhook does not count: create makes a new one (unarchive or apply revive the old).
	c.ok("archive", first.Data[0].ID)
	c.ok("create", "-u", "https://example.com/hooks", "-e", "email.opened")
	assert.Len(t, c.stored(), 4)
	// Another URL is another webhook.
	c.ok("create", "-u", "https://example.com/other", "-e", "email.opened")
	assert.Len(t, c.stored(), 5)
}

func TestInvalidEventNamesSendNothing(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	before := c.requests()
	for _, args := range [][]string{
		{"create", "-u", "https://example.com/hooks", "-e", "email.sent,Bogus,email.clicked,email.opend"},
		{"create", "-u", "https://example.com/hooks", "-e", "email.sent", "-e", "Bogus"},
		{"apply", "-u", "https://example.com/hooks", "-e", "email.sent,Bogus,email.opend"},
		{"test", id, "-e", "Bogus"},
		{"trigger", "Bogus", "-u", "http://127.0.0.1:1/", "-s", "k3y-value"},
	} {
		res := c.run(args...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", args, res.stderr)
		assert.Contains(t, res.stderr, `"Bogus"`, args)
	}
	res := c.run("create", "-u", "https://example.com/hooks", "-e", "email.sent,Bogus,email.clicked,email.opend")
	assert.Contains(t, res.stderr, `unknown event types "Bogus" (did you mean`, "every bad name in one message")
	assert.Contains(t, res.stderr, `"email.opend" (did you mean "Email.Opened"?); nothing was sent`)
	assert.Equal(t, before, c.requests(), "no request for an invalid name, whatever the command")
}

func TestDebugLines(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	line := regexp.MustCompile(`^debug: (GET|POST|PATCH) (/[^ ?]*) -> (.+) in [0-9.]+(µs|ms|s) \(retry (\d)\)$`)
	debugLines := func(stderr string) [][]string {
		var out [][]string
		for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if strings.HasPrefix(l, "debug: ") {
				m := line.FindStringSubmatch(l)
				require.NotNil(t, m, "debug line %q", l)
				out = append(out, m)
			}
		}
		return out
	}

	c.srv.FailNext(2, http.StatusServiceUnavailable, 0)
	res := c.ok("webhooks", "get", id, "--debug")
	got := debugLines(res.stderr)
	require.Len(t, got, 3, res.stderr)
	for i, want := range []struct{ status, retry string }{{"503 Service Unavailable", "0"}, {"503 Service Unavailable", "1"}, {"200 OK", "2"}} {
		assert.Equal(t, "GET", got[i][1])
		assert.Equal(t, "/webhooks/"+id, got[i][2])
		assert.Equal(t, want.status, got[i][3])
		assert.Equal(t, want.retry, got[i][5])
	}
	secret := c.secret(id)
	assert.NotContains(t, res.stderr, secret)
	assert.NotContains(t, res.stderr, "Bearer")

	res = c.ok("-v", "list")
	got = debugLines(res.stderr)
	require.Len(t, got, 2, "the page, then the archived count")
	for _, g := range got {
		assert.Equal(t, "/webhooks", g[2], "paths without their query")
		assert.Equal(t, "0", g[5], "a new call starts at retry 0")
	}

	rc := newReceiver(t, http.StatusOK)
	res = c.ok("trigger", "email.opened", "-u", rc.URL+"/hook?token=abc123", "-s", "trigger-secret", "-v")
	got = debugLines(res.stderr)
	require.Len(t, got, 1)
	assert.Equal(t, "/hook", got[0][2])
	for _, hidden := range []string{"abc123", "trigger-secret", "X-Signature"} {
		assert.NotContains(t, res.stderr, hidden)
	}

	// A dead API: every retry is shown instead of a silent wait.
	t.Setenv("CAKEMAIL_BASE_URL", "http://127.0.0.1:1")
	start := time.Now()
	res = c.run("list", "-v")
	assert.Equal(t, exitFailure, res.code)
	got = debugLines(res.stderr)
	require.Len(t, got, 4, res.stderr)
	for i, g := range got {
		assert.Contains(t, g[3], "error: dial tcp")
		assert.Equal(t, string(rune('0'+i)), g[5])
	}
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.NotContains(t, res.stderr, "retries over", "-v already showed them")

	// Without -v, the failure says it was retried, and how to see more.
	res = c.run("list")
	assert.Equal(t, exitFailure, res.code)
	assert.Regexp(t, `connection refused \(after 3 retries over [0-9.]+m?s; -v shows each exchange\)\n$`, res.stderr)
}

func TestURLPasswordsStayOffStderr(t *testing.T) {
	c := newCLI(t)
	const pw = "hunter2-in-url"
	check := func(res result) {
		t.Helper()
		assert.NotContains(t, res.stderr, pw)
	}
	// A password in the API's base URL: unusable, with -v, and refused as a URL.
	t.Setenv("CAKEMAIL_BASE_URL", "http://admin:"+pw+"@127.0.0.1:1")
	res := c.run("list", "-v")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "CAKEMAIL_BASE_URL=http://admin:xxxxx@127.0.0.1:1 holds a user name: leave it out")
	check(res)
	t.Setenv("CAKEMAIL_BASE_URL", "ftp://admin:"+pw+"@127.0.0.1:1")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "CAKEMAIL_BASE_URL=ftp://admin:xxxxx@127.0.0.1:1 is not an http or https URL")
	check(res)
	t.Setenv("CAKEMAIL_BASE_URL", "127.0.0.1:1@admin:"+pw)
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	check(res)

	// A password in a webhook's URL.
	t.Setenv("CAKEMAIL_BASE_URL", c.srv.URL)
	res = c.run("create", "-u", "http://admin:"+pw+"@example.com/hook", "-e", "email.opened")
	assert.Equal(t, exitUsage, res.code)
	check(res)
	res = c.ok("create", "-u", "https://admin:"+pw+"@example.com/hook", "-e", "email.opened,email.clicked", "-v")
	check(res)
	res = c.ok("create", "-u", "https://admin:"+pw+"@example.com/hook", "-e", "email.opened", "-v")
	assert.Contains(t, res.stderr, "already delivers")
	check(res)

	// And in the URLs trigger and listen send to.
	res = c.run("trigger", "email.opened", "-u", "http://admin:"+pw+"@127.0.0.1:1/hook", "-s", "k3y-value", "-v")
	assert.Equal(t, exitFailure, res.code)
	check(res)
	res = c.run("listen", "-s", "k3y-value", "--forward-to", "ftp://admin:"+pw+"@127.0.0.1:1/")
	assert.Equal(t, exitUsage, res.code)
	check(res)
}
