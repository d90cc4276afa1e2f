package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in-process against srv, with the environment a user would set.
type cli struct {
	t     *testing.T
	srv   *webhookstest.Server
	token string
	// beforeAPI, when set, sees every API request before it is sent.
	beforeAPI func(*http.Request)
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	srv := webhookstest.NewServer()
	t.Cleanup(srv.Close)
	token := srv.Token()
	t.Setenv("CAKEMAIL_BASE_URL", srv.URL)
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", token)
	t.Setenv("CAKEMAIL_USERNAME", "")
	t.Setenv("CAKEMAIL_PASSWORD", "")
	t.Setenv("CAKEMAIL_ACCOUNT_ID", "")
	t.Setenv("CAKEMAIL_WEBHOOK_SECRET", "")
	return &cli{t: t, srv: srv, token: token}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// app returns the command as main builds it, writing to stdout and stderr.
func (c *cli) app(stdin string, stdout, stderr io.Writer) *app {
	a := &app{
		stdin: strings.NewReader(stdin), stdout: stdout, stderr: stderr,
		clientOptions: []webhooks.Option{webhooks.WithRetryWait(time.Millisecond, 5*time.Millisecond)},
		httpClient:    &http.Client{Timeout: 5 * time.Second},
	}
	if c.beforeAPI != nil {
		next := http.DefaultTransport
		a.apiTransport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			c.beforeAPI(r)
			return next.RoundTrip(r)
		})
	}
	return a
}

func (c *cli) runStdin(stdin string, args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	code := c.app(stdin, &stdout, &stderr).run(context.Background(), args)
	res := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	c.checkOutput(res)
	return res
}

// checkOutput asserts what holds for every run: no token printed, and a
// failure reported once, on the last line.
func (c *cli) checkOutput(res result) {
	c.t.Helper()
	assert.NotContains(c.t, res.stdout+res.stderr, c.token, "the access token must never be printed")
	assert.NotContains(c.t, res.stderr, "[hidden]", "nothing needed masking: no secret reached stderr in the first place")
	if res.code != exitOK {
		lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
		assert.True(c.t, strings.HasPrefix(lines[len(lines)-1], "cakemail-webhooks: "), "the error is the last line: %q", res.stderr)
		assert.Equal(c.t, 1, strings.Count(res.stderr, "cakemail-webhooks: "), "the error is one line: %q", res.stderr)
		assert.NotRegexp(c.t, `cakemail-webhooks: [a-z]+: webhooks:`, res.stderr, "no repeated prefix")
	}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runStdin("", args...)
}

// ok runs the command and requires it to succeed.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	res := c.run(args...)
	require.Equal(c.t, exitOK, res.code, "%v: %s", args, res.stderr)
	return res
}

// create makes a webhook through the command and returns its id.
func (c *cli) create(url string, event string) string {
	c.t.Helper()
	res := c.ok("create", "-u", url, "-e", event, "-f", "json")
	var v webhookView
	require.NoError(c.t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
	require.NotEmpty(c.t, v.ID)
	return v.ID
}

// secret returns the stored secret of webhook id.
func (c *cli) secret(id string) string {
	c.t.Helper()
	h, ok := c.srv.Webhook(id)
	require.True(c.t, ok, id)
	return h.Secret
}

// stored returns every webhook of the default account, archived ones included.
func (c *cli) stored() []webhookView {
	c.t.Helper()
	return decodeList(c.t, c.ok("list", "--archived", "-l", "100", "-f", "json").stdout).Data
}

// requests counts the API calls the server has received.
func (c *cli) requests() int { return len(c.srv.Requests()) }

func decodeList(t *testing.T, out string) listView {
	t.Helper()
	var v listView
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v
}

func TestCreateGetUpdateArchiveUnarchive(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	stored, ok := c.srv.Webhook(id)
	require.True(t, ok)
	assert.Equal(t, webhooks.EventEmailOpened, stored.Event)

	t.Run("get json, flags after the id", func(t *testing.T) {
		res := c.run("get", id, "-f", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var v webhookView
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.Equal(t, id, v.ID)
		assert.Equal(t, "https://example.com/hooks", v.URL)
		assert.Equal(t, stored.Secret, v.Secret)
		assert.Equal(t, []webhooks.EventType{webhooks.EventEmailOpened}, v.Events, "the CLI reference's events list")
		assert.Equal(t, webhooks.StatusActive, v.Status)
		assert.Nil(t, v.ArchivedAt)
	})
	t.Run("get table", func(t *testing.T) {
		res := c.run("get", "--format=table", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		assert.Contains(t, res.stdout, "Email.Opened")
		assert.Contains(t, res.stdout, stored.Secret)
		assert.Contains(t, res.stdout, "sensitive")
	})
	t.Run("update", func(t *testing.T) {
		res := c.run("update", id, "--rate-limit", "7", "--period", "minute", "-u", "https://example.com/v2", "-f", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var v webhookView
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.Equal(t, 7, v.RateLimit)
		assert.Equal(t, webhooks.PerMinute, v.RateLimitPeriod)
		assert.Equal(t, "https://example.com/v2", v.URL)
		now, _ := c.srv.Webhook(id)
		assert.Equal(t, 7, now.RateLimit)
	})
	t.Run("archive hides it from list", func(t *testing.T) {
		res := c.run("archive", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		assert.Contains(t, res.stdout, "Webhook "+id+" archived.")
		assert.Contains(t, res.stdout, "Archived at:")
		now, _ := c.srv.Webhook(id)
		assert.Equal(t, webhooks.StatusArchived, now.Status)

		res = c.run("list", "-f", "json")
		assert.Empty(t, decodeList(t, res.stdout).Data)
		assert.Contains(t, res.stderr, "1 archived webhook(s) not shown; add --archived to list them")
		res = c.run("list")
		assert.Contains(t, res.stdout, "0 active webhook(s); page 1. 1 archived webhook(s) not shown; add --archived")
		withArchived := decodeList(t, c.run("list", "--archived", "-f", "json").stdout)
		require.Len(t, withArchived.Data, 1)
		assert.NotNil(t, withArchived.Data[0].ArchivedAt)
	})
	t.Run("unarchive", func(t *testing.T) {
		res := c.run("unarchive", id, "-f", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var v webhookView
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.Equal(t, webhooks.StatusActive, v.Status)
		assert.Len(t, decodeList(t, c.run("list", "-f", "json").stdout).Data, 1)
	})
}

func TestList(t *testing.T) {
	c := newCLI(t)
	var ids []string
	for _, event := range []string{"email.opened", "email.clicked", "email.bounced"} {
		ids = append(ids, c.create("https://example.com/"+event, event))
	}

	t.Run("json", func(t *testing.T) {
		v := decodeList(t, c.run("list", "-f", "json").stdout)
		assert.Equal(t, 3, v.Count)
		require.Len(t, v.Data, 3)
		for i, id := range ids {
			assert.Equal(t, id, v.Data[i].ID)
			assert.Empty(t, v.Data[i].Secret, "list never shows secrets")
		}
	})
	t.Run("pages", func(t *testing.T) {
		res := c.run("list", "-l", "2", "-p", "2", "-f", "json")
		require.Equal(t, exitOK, res.code, res.stderr)
		v := decodeList(t, res.stdout)
		assert.Equal(t, 3, v.Count, "count is the total, not the page")
		require.Len(t, v.Data, 1)
		assert.Equal(t, ids[2], v.Data[0].ID)
	})
	t.Run("table columns line up", func(t *testing.T) {
		res := c.run("list")
		require.Equal(t, exitOK, res.code, res.stderr)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		require.Len(t, lines, 5, res.stdout) // header, 3 rows, footer
		col := strings.Index(lines[0], "EVENT")
		require.Positive(t, col)
		for i, line := range lines[1:4] {
			assert.True(t, strings.HasPrefix(line, ids[i]), line)
			assert.True(t, strings.HasPrefix(line[col:], "Email."), "event column at %d in %q", col, line)
		}
		assert.Equal(t, "3 active webhook(s); page 1.", lines[4])
		assert.Contains(t, c.ok("list", "--archived").stdout, "3 webhook(s), archived included; page 1.")
		assert.Contains(t, c.ok("list", "-p", "9").stdout, "3 active webhook(s); page 9 is past the last one.")
	})
}

func TestCreateSeveralEvents(t *testing.T) {
	c := newCLI(t)
	res := c.run("create", "-u", "https://example.com/hooks", "-e", "email.opened, Email.Clicked,email.opened", "--rate-limit", "5", "--period", "second", "-f", "json")
	require.Equal(t, exitOK, res.code, res.stderr)
	assert.Contains(t, res.stderr, "one event", "the command says why it creates several webhooks")
	v := decodeList(t, res.stdout)
	assert.Equal(t, 2, v.Count, "a repeated event is created once")
	require.Len(t, v.Data, 2)
	assert.Equal(t, webhooks.EventEmailOpened, v.Data[0].Event)
	assert.Equal(t, webhooks.EventEmailClicked, v.Data[1].Event)
	for _, d := range v.Data {
		assert.Equal(t, 5, d.RateLimit)
		assert.Equal(t, webhooks.PerSecond, d.RateLimitPeriod)
	}
}

func TestCreatePartialFailureNamesWhatWasCreated(t *testing.T) {
	c := newCLI(t)
	posts := 0
	c.beforeAPI = func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/webhooks" {
			if posts++; posts == 2 {
				c.srv.FailNext(1, http.StatusInternalServerError, 0)
			}
		}
	}
	res := c.run("create", "-u", "https://example.com/hooks", "-e", "email.opened,email.clicked")
	assert.Equal(t, exitFailure, res.code)
	list := decodeList(t, c.run("list", "-f", "json").stdout)
	require.Len(t, list.Data, 1)
	assert.Contains(t, res.stderr, "creating the Email.Clicked webhook")
	assert.Contains(t, res.stderr, "500")
	assert.Contains(t, res.stderr, "already created: "+list.Data[0].ID+" (Email.Opened)")
	assert.Contains(t, res.stdout, list.Data[0].ID, "what was created is still printed")
}

// TestGuideOnlyEventsAreRefusedBeforeAnythingIsSent: the API answers 422 to
// the events only Cakemail's guide names, so they are refused like unknown
// names, with every other bad name, before any request.
func TestGuideOnlyEventsAreRefusedBeforeAnythingIsSent(t *testing.T) {
	c := newCLI(t)
	const url = "https://example.com/hooks"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "-u", url, "-e", "email.opened,campaign.sent"},
			`cakemail-webhooks: create: event type the API does not accept: "campaign.sent" (Campaign.Sent, named only in Cakemail's guide: the API refuses it); nothing was sent`},
		{[]string{"create", "-u", url, "-e", "campaign.sent,campaign.completed"},
			`event types the API does not accept: "campaign.sent" (Campaign.Sent, named only in Cakemail's guide: the API refuses it), "campaign.completed" (Campaign.Sent, named only`},
		{[]string{"create", "-u", url, "-e", "Campaign.Sent", "-e", "contact.unsubscribed"},
			`"Campaign.Sent" (named only in Cakemail's guide: the API refuses it), "contact.unsubscribed" (Contact.Unsubscribed, named only`},
		{[]string{"create", "-u", url, "-e", "email.opened,Bogus,campaign.sent"},
			`unknown event types "Bogus" (did you mean`},
		{[]string{"apply", "-u", url, "-e", "email.opened,campaign.sent,email.bounced"},
			`cakemail-webhooks: apply: event type the API does not accept: "campaign.sent"`},
	} {
		res := c.run(tc.args...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		assert.Contains(t, res.stderr, tc.want, tc.args)
		assert.NotContains(t, res.stderr, "warning", tc.args)
		assert.Empty(t, res.stdout, tc.args)
	}
	assert.Empty(t, c.srv.Requests(), "not a write, not even a read")
	assert.Empty(t, c.stored())
}

func TestCreateIsSentOnceAfterServerError(t *testing.T) {
	c := newCLI(t)
	var once sync.Once
	c.beforeAPI = func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/webhooks" {
			once.Do(func() { c.srv.FailNext(1, http.StatusInternalServerError, 0) })
		}
	}
	res := c.run("create", "-u", "https://example.com/hooks", "-e", "email.opened")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "500")
	posts := 0
	for _, r := range c.srv.Requests() {
		if r.Method == http.MethodPost && r.Path == "/webhooks" {
			posts++
		}
	}
	assert.Equal(t, 1, posts, "a create that may have reached the server is not retried")
	assert.NotContains(t, res.stderr, "retries")
}

func TestReadsRetryThroughUnavailable(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	c.srv.FailNext(2, http.StatusServiceUnavailable, 0)
	res := c.run("get", id)
	assert.Equal(t, exitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, id)
}

func TestAPIErrorsExitOne(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"get", "no-such-webhook"},
		{"archive", "no-such-webhook"},
		{"unarchive", "no-such-webhook"},
		{"update", "no-such-webhook", "--rate-limit", "3"},
	} {
		res := c.run(args...)
		assert.Equal(t, exitFailure, res.code, args)
		assert.Contains(t, res.stderr, "404", args)
	}

	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "not-a-token")
	res := c.run("list")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "401")
	assert.NotContains(t, res.stderr, "not-a-token")
}

func TestUsageErrorsSendNothing(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	before := c.requests()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, "unknown command"},
		{[]string{"webhooks", "nope"}, "unknown command"},
		{[]string{"get"}, "exactly one webhook id"},
		{[]string{"get", id, id}, "exactly one webhook id"},
		{[]string{"get", id, "-f", "xml"}, `-f must be table or json, not "xml"`},
		{[]string{"get", id, "--format"}, "--format needs a value"},
		{[]string{"list", "--bogus"}, "unknown flag --bogus"},
		{[]string{"list", "--bogus", "-x", "--archived"}, "unknown flags --bogus, -x (see cakemail-webhooks list -h)"},
		{[]string{"list", "-l", "-1"}, "-l must be at least 1, not -1"},
		{[]string{"list", "-l", "0"}, "-l must be at least 1, not 0"},
		{[]string{"list", "--page", "0"}, "--page must be at least 1, not 0"},
		{[]string{"list", "-l", "ten"}, `-l wants a whole number, not "ten"`},
		{[]string{"list", "--archived=maybe"}, "--archived takes no value"},
		{[]string{"list", "extra"}, "unexpected argument"},
		{[]string{"create", "-e", "email.opened"}, "-u URL is required"},
		{[]string{"create", "-u", "https://example.com"}, "-e EVENTS is required"},
		{[]string{"create"}, "-u URL and -e EVENTS are required"},
		{[]string{"create", "-u", "https://example.com", "-e", "email.opend"}, `unknown event type "email.opend" (did you mean "Email.Opened"?); nothing was sent`},
		{[]string{"create", "-u", "https://example.com", "-e", ","}, "-e names no event"},
		{[]string{"create", "-u", "http://example.com", "-e", "email.opened"}, `-u: "http://example.com" is plain http`},
		{[]string{"create", "--url", "example.com/hook", "-e", "email.opened"}, `--url: "example.com/hook" is not an absolute URL`},
		{[]string{"create", "-u", "https://example.com", "-e", "email.opened", "--period", "hour"}, `--period must be second or minute, not "hour"`},
		{[]string{"create", "-u", "https://example.com", "-e", "email.opened", "--rate-limit", "0"}, "--rate-limit must be at least 1"},
		{[]string{"create", "-u", "https://example.com", "-e", "email.opened", "--secret", "s3cr3t-value"}, "--secret: Cakemail generates each webhook's secret"},
		{[]string{"update", id, "-e", "email.clicked"}, "-e: a webhook's event cannot change; to set the events a URL gets, run: cakemail-webhooks apply"},
		{[]string{"update", id, "-s", "s3cr3t-value"}, "-s: Cakemail generates each webhook's secret; to replace it, run: cakemail-webhooks rotate " + id},
		{[]string{"update", id}, "nothing to update"},
		{[]string{"update", id, "-n", "New name"}, "nothing to update"},
		{[]string{"update", id, "--rate-limit", "-4"}, "--rate-limit must be at least 1, not -4"},
		{[]string{"update", id, "-u", "ftp://example.com"}, `-u: "ftp://example.com": scheme "ftp", want https`},
		{[]string{"test", id, "-e", "email.nothing"}, "unknown event"},
		{[]string{"verify", "--signature", "abc"}, "-s SECRET"},
		{[]string{"verify", "-s", "k"}, "captured HTTP request"},
		{[]string{"verify", "-s", "k", "--signature", "x", "a", "b"}, "at most one"},
		{[]string{"events", "extra"}, "unexpected argument"},
		{[]string{"version", "extra"}, "unexpected argument"},
		{[]string{"help", "nope"}, `unknown command "nope"`},
	} {
		res := c.run(tc.args...)
		assert.Equal(t, exitUsage, res.code, "%v: %s", tc.args, res.stderr)
		assert.Contains(t, res.stderr, tc.want, tc.args)
		assert.NotContains(t, res.stderr, "s3cr3t-value", "a refused secret is not echoed")
		assert.NotContains(t, res.stderr, "Params", "messages name flags, not SDK fields")
		assert.NotContains(t, res.stderr, "With", "messages name flags, not SDK options")
		assert.Empty(t, res.stdout, tc.args)
	}
	assert.Equal(t, before, c.requests(), "no usage error reaches the API")
}

func TestUnsupportedFlagsAreReportedTogether(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	before := c.requests()

	res := c.run("update", id, "-u", "https://example.com/v2", "-e", "email.sent,email.bounced", "-n", "Email Events v2", "-s", "secure_key_2024")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "warning: -n ignored: Cakemail webhooks have no name")
	last := res.stderr[strings.LastIndex(strings.TrimSuffix(res.stderr, "\n"), "\n")+1:]
	assert.Contains(t, last, "-e: a webhook's event cannot change", "one message names every refused flag")
	assert.Contains(t, last, "-s: Cakemail generates each webhook's secret")
	assert.NotContains(t, res.stderr, "secure_key_2024")
	assert.Equal(t, before, c.requests())

	res = c.run("create", "-u", "https://example.com/x", "-e", "email.sent", "--name", "Secure Webhook", "--secret", "my_secret_key_12345")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "warning: --name ignored")
	assert.Contains(t, res.stderr, "--secret: Cakemail generates")
	assert.Equal(t, before, c.requests())

	// -n alone is only a warning: the webhook is made.
	res = c.ok("create", "-u", "https://example.com/named", "-e", "email.sent", "-n", "Email Tracker")
	assert.Contains(t, res.stderr, "warning: -n ignored")
	assert.Contains(t, res.stdout, "Email.Sent")
}

func TestCredentialMessages(t *testing.T) {
	c := newCLI(t)
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	res := c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "cakemail-webhooks: list: no credentials. Set CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD.")

	t.Setenv("CAKEMAIL_USERNAME", "jane@example.com")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "list: CAKEMAIL_USERNAME is set but CAKEMAIL_PASSWORD is not. Set CAKEMAIL_PASSWORD too, or set CAKEMAIL_ACCESS_TOKEN instead.\n")

	t.Setenv("CAKEMAIL_USERNAME", "")
	t.Setenv("CAKEMAIL_PASSWORD", "pa55word")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "CAKEMAIL_PASSWORD is set but CAKEMAIL_USERNAME is not.")

	t.Setenv("CAKEMAIL_ACCESS_TOKEN", c.token)
	t.Setenv("CAKEMAIL_BASE_URL", "127.0.0.1:18125")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "list: CAKEMAIL_BASE_URL=127.0.0.1:18125 is not an http or https URL without a query; set it like https://api.cakemail.dev")

	// A check only the SDK makes is still worded by the variable's name.
	t.Setenv("CAKEMAIL_BASE_URL", "https://bücher.example")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "list: CAKEMAIL_BASE_URL")
	assert.NotContains(t, res.stderr, "With")
	assert.NotContains(t, res.stderr, "invalid parameters")

	t.Setenv("CAKEMAIL_BASE_URL", c.srv.URL)
	t.Setenv("CAKEMAIL_ACCOUNT_ID", "first")
	res = c.run("list")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, `CAKEMAIL_ACCOUNT_ID="first" is not an account id`)
	assert.Empty(t, c.srv.Requests())

	// Username and password work, and the password stays off stderr even under -v.
	t.Setenv("CAKEMAIL_ACCOUNT_ID", "")
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	t.Setenv("CAKEMAIL_USERNAME", webhookstest.DefaultUsername)
	t.Setenv("CAKEMAIL_PASSWORD", webhookstest.DefaultPassword)
	res = c.ok("-v", "list")
	assert.Contains(t, res.stderr, "debug: POST /token -> 200 OK")
	assert.NotContains(t, res.stderr, webhookstest.DefaultPassword)
}

func TestHelp(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"-h"}, {"help"}, {"--help"}, {"webhooks", "help"}} {
		res := c.ok(args...)
		for _, cmd := range commands {
			assert.Contains(t, res.stdout, "\n  "+cmd.name+" ", args)
		}
	}
	for _, cmd := range commands {
		for _, args := range [][]string{{cmd.name, "-h"}, {cmd.name, "--help"}, {"help", cmd.name}, {"help", "webhooks", cmd.name}, {"webhooks", cmd.name, "-h"}} {
			res := c.ok(args...)
			assert.Contains(t, res.stdout, "Usage: cakemail-webhooks "+cmd.name, args)
			assert.Contains(t, res.stdout, "-f, --format table|json", args)
			assert.Contains(t, res.stdout, "-v, --debug", args)
		}
	}
	res := c.ok("help", "create")
	for _, flag := range []string{"-u, --url URL", "-e, --events EVENTS", "--rate-limit N", "--period second|minute", "-n, --name NAME", "-s, --secret SECRET"} {
		assert.Contains(t, res.stdout, flag)
	}
	assert.Contains(t, res.stdout, "already delivers an event to the URL is reported")
	assert.NotContains(t, res.stdout, "Commands:", "help create is create's help, not the general one")
	assert.Equal(t, exitUsage, c.run().code, "no command is a usage error")
	assert.Empty(t, c.srv.Requests())
}

func TestVersion(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"version"}, {"--version"}, {"webhooks", "version"}} {
		res := c.ok(args...)
		assert.Contains(t, res.stdout, "cakemail-webhooks "+webhooks.Version, args)
	}
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(c.ok("version", "-f", "JSON").stdout), &v))
	assert.Equal(t, webhooks.Version, v["version"])
}

func TestEvents(t *testing.T) {
	c := newCLI(t)
	res := c.ok("events")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, len(webhooks.EventTypes()))
	for i, t0 := range webhooks.EventTypes() {
		name, note, _ := strings.Cut(lines[i], "\t")
		assert.Equal(t, string(t0), name)
		assert.Equal(t, t0.GuideOnly(), strings.Contains(note, "only in Cakemail's guide"), lines[i])
	}

	res = c.ok("events", "-f", "json")
	var types []webhooks.EventType
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &types))
	assert.Equal(t, webhooks.EventTypes(), types)
}

func TestVerify(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-for-the-verify-command"
	body := `{"event":"Email.Opened","account_id":1,"created_on":1700000000,"data":{}}`
	file := filepath.Join(t.TempDir(), "delivery.json")
	require.NoError(t, os.WriteFile(file, []byte(body), 0o600))

	t.Run("file, base64", func(t *testing.T) {
		res := c.run("verify", "-s", secret, "--signature", webhooks.Sign([]byte(body), secret), file)
		assert.Equal(t, exitOK, res.code, res.stderr)
		assert.Contains(t, res.stdout, "valid")
	})
	t.Run("stdin, hex, secret from the environment", func(t *testing.T) {
		t.Setenv("CAKEMAIL_WEBHOOK_SECRET", secret)
		res := c.runStdin(body, "verify", "-", "--signature", "sha256="+webhooks.SignHex([]byte(body), secret), "-f", "json")
		assert.Equal(t, exitOK, res.code, res.stderr)
		var v verifyResult
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.True(t, v.Valid)
	})
	t.Run("tampered", func(t *testing.T) {
		sig := webhooks.Sign([]byte(body), secret)
		res := c.runStdin(body+"\n", "verify", "-s", secret, "--signature", sig, "-f", "json")
		assert.Equal(t, exitFailure, res.code)
		var v verifyResult
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
		assert.False(t, v.Valid)
		assert.Contains(t, res.stderr, "invalid")
		assert.NotContains(t, res.stderr, secret)
		assert.NotContains(t, res.stderr, sig)
	})
	t.Run("a whole captured request", func(t *testing.T) {
		crlf := "POST /webhooks/cakemail HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\nX-Signature: " + webhooks.Sign([]byte(body), secret) + "\r\n\r\n" + body
		res := c.runStdin(crlf, "verify", "-s", secret)
		assert.Equal(t, exitOK, res.code, res.stderr)

		// Pasted by hand: bare newlines, the legacy header in hex, no length.
		pasted := "POST /hook HTTP/1.1\nHost: example.com\nX-Cakemail-Signature: " + webhooks.SignHex([]byte(body), secret) + "\n\n" + body
		res = c.runStdin(pasted, "verify", "-s", secret)
		assert.Equal(t, exitOK, res.code, res.stderr)

		res = c.runStdin(strings.Replace(pasted, `"Email.Opened"`, `"Email.Clicked"`, 1), "verify", "-s", secret)
		assert.Equal(t, exitFailure, res.code, "a tampered capture fails")

		res = c.runStdin("POST /hook HTTP/1.1\nHost: example.com\n\n"+body, "verify", "-s", secret)
		assert.Equal(t, exitFailure, res.code, "a capture without a signature fails verification")
		assert.Contains(t, res.stderr, "invalid: missing signature: the captured request has no X-Signature or X-Cakemail-Signature header; --explain")
	})
	t.Run("missing file", func(t *testing.T) {
		res := c.run("verify", "-s", secret, "--signature", "x", filepath.Join(t.TempDir(), "absent"))
		assert.Equal(t, exitUsage, res.code)
	})
	assert.Empty(t, c.srv.Requests(), "verify works offline")
}
