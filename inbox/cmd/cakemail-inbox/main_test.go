package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// runCLI runs the command in process, as main would.
func runCLI(databaseURL string, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut, func(k string) string {
		if k == "DATABASE_URL" {
			return databaseURL
		}
		return ""
	})
	return out.String(), errOut.String(), code
}

func TestDeliveryKindIsTheInboxs(t *testing.T) {
	assert.Equal(t, inbox.DeliveryArgs{}.Kind(), deliveryKind)
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "30s": 30 * time.Second,
	} {
		got, err := parseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "7", "-1h", "0s", "0d", "7x", "1.5d", "d12h", "7dd"} {
		_, err := parseDuration(in)
		assert.Error(t, err, in)
	}
	at, err := parseWhen("--since", "2026-01-02T03:04:05Z")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), at.UTC())
}

func TestUsageMistakesExitTwoAndHelpExitsZero(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "never-opened.db")
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"deadletters"},
		{"deadletters", "purge"},
		{"status", "extra"},
		{"status", "--bogus"},
		{"deadletters", "list", "--since", "yesterday"},
		{"deadletters", "list", "--type", "email.openned"},
		{"deadletters", "retry"},
		{"deadletters", "retry", "12", "--all"},
		{"deadletters", "retry", "twelve"},
		{"replay"},
		{"replay", "--since", "1h", "--until", "2h"},
	} {
		out, stderr, code := runCLI(db, args...)
		assert.Equal(t, 2, code, "%v: %s%s", args, out, stderr)
		assert.Contains(t, stderr, "cakemail-inbox: ", args)
		assert.NotContains(t, stderr, "goroutine", args)
	}
	_, stderr, _ := runCLI(db, "deadletters", "list", "--type", "email.openned")
	assert.Contains(t, stderr, `did you mean "Email.Opened"?`)

	for _, args := range [][]string{
		{"-h"}, {"help"}, {"status", "-h"}, {"deadletters", "-h"}, {"deadletters", "list", "-h"},
		{"deadletters", "retry", "--help"}, {"replay", "-h"},
	} {
		out, stderr, code := runCLI(db, args...)
		assert.Equal(t, 0, code, "%v: %s", args, stderr)
		assert.Contains(t, out, "Usage:", args)
	}
	out, _, _ := runCLI(db, "replay", "-h")
	assert.Contains(t, out, "-dry-run")
	assert.Contains(t, out, "effects outside it")
	_, err := os.Stat(strings.TrimPrefix(db, "sqlite://"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "a usage mistake touched the database")
}

func TestDatabaseMistakesAreClearAndKeepThePassword(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	db, err := sql.Open("sqlite", "file:"+empty)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE t (x INTEGER)`)
	require.NoError(t, err)
	db.Close()
	for _, c := range []struct {
		url, want string
		code      int
	}{
		{"", "DATABASE_URL is not set", 2},
		{"mysql://root:hunter2@db/app", `unsupported scheme "mysql"`, 2},
		{"hunter2", "want sqlite:///path/to/file.db or a postgres:// URL", 2},
		{"postgres://root:hunter2@x:notaport/y", "not a valid postgres:// URL", 2},
		{"postgres://root:hunter2@127.0.0.1:1/y?connect_timeout=5", "connecting to Postgres", 1},
		{"sqlite://" + filepath.Join(dir, "missing.db"), "no database at", 1},
		{"sqlite://" + empty, "no inbox in this database", 1},
	} {
		out, stderr, code := runCLI(c.url, "status")
		assert.Equal(t, c.code, code, "%s: %s", c.url, stderr)
		assert.Empty(t, out, c.url)
		assert.Contains(t, stderr, c.want, c.url)
		assert.NotContains(t, stderr, "hunter2", c.url)
	}
	_, err = os.Stat(filepath.Join(dir, "missing.db"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "the command created a database")
}

func TestRedactRemovesThePasswordHoweverQuoted(t *testing.T) {
	url := "postgres://app:p%40ss%2Fw0rd@db.internal:5432/app"
	msg := redact("failed: postgres://app:p%40ss%2Fw0rd@db.internal:5432/app; password p@ss/w0rd; escaped p%40ss%2Fw0rd", url)
	assert.NotContains(t, msg, "w0rd")
	assert.Equal(t, "plain", redact("plain", "sqlite:///x.db"))
}

// The commands beside a running inbox on SQLite, in process: the plain
// output an operator reads, and the checks retry makes on ids.
func TestCommandsBesideARunningInbox(t *testing.T) {
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "inbox.db")
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailBounced, func(context.Context, *webhooks.Event) error {
		return fmt.Errorf("%w: bounce handler bug", webhooks.ErrInvalidEvent)
	})
	router.OnUnhandled(func(context.Context, *webhooks.Event) error { return nil })
	ib, err := inbox.Open(ctx, url, router, inbox.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	require.NoError(t, ib.Start(ctx))
	defer ib.Stop(ctx)
	const secret = "cmd-test-secret-0123456789abcdef"
	v, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	h := v.Middleware(ib)
	post := func(body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, webhookstest.NewSignedRequest("/", []byte(body), secret))
		require.Equal(t, http.StatusAccepted, w.Code)
	}
	now := time.Now().Unix()
	post(fmt.Sprintf(`{"event":"Email.Bounced","created_on":%d,"data":{"email":"b@example.com"}}`, now))
	post(fmt.Sprintf(`{"event":"Email.Clicked","created_on":%d,"data":{"email":"c@example.com"}}`, now))

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var status struct{ Dead, CompletedLastHour int }
		out, stderr, code := runCLI(url, "status", "--json")
		require.Equal(c, 0, code, stderr)
		require.NoError(c, json.Unmarshal([]byte(strings.ReplaceAll(out, "completed_last_hour", "CompletedLastHour")), &status))
		assert.Equal(c, 1, status.Dead, "dead")
		assert.Equal(c, 1, status.CompletedLastHour, "completed, last hour")
	}, 15*time.Second, 10*time.Millisecond, "the deliveries were never worked")
	out, _, code := runCLI(url, "status")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^dead +1$`, out)
	assert.Regexp(t, `(?m)^oldest waiting +-$`, out)
	assert.Regexp(t, `(?m)^completed, last hour +1 \(stale: 0\)$`, out)

	out, _, code = runCLI(url, "deadletters", "list")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^ID +TYPE +SUBSCRIBER +STATE +ATTEMPTS +FAILED +LAST ERROR$`, out)
	assert.Regexp(t, `(?m)^1 +Email.Bounced +default +cancelled +1 +\S+ \S+ \(.+\) +.*bounce handler bug$`, out)
	assert.Contains(t, out, "\n1 dead letter\n")
	out, _, _ = runCLI(url, "deadletters", "list", "--grep", "nothing like it")
	assert.Equal(t, "no dead letters\n", out)

	_, stderr, code := runCLI(url, "deadletters", "retry", "1", "2")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "job 2 is not a dead letter: it is completed")
	_, stderr, code = runCLI(url, "deadletters", "retry", "99")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no job 99")
	_, stderr, code = runCLI(url, "deadletters", "retry", "1", "--type", "Email.Clicked")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "job 1 does not match")

	out, _, code = runCLI(url, "deadletters", "retry", "1", "--dry-run", "--json")
	require.Equal(t, 0, code)
	assert.JSONEq(t, `{"dry_run":true,"count":1,"ids":[1]}`, out)
	out, _, code = runCLI(url, "replay", "--since", "1h", "--type", "email.clicked", "--json", "--dry-run")
	require.Equal(t, 0, code)
	assert.JSONEq(t, `{"dry_run":true,"count":1,"ids":[2]}`, out)
	out, _, code = runCLI(url, "replay", "--since", "1h", "--until", "30m", "--dry-run")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "would replay 0 completed deliveries")

	out, stderr, code = runCLI(url, "deadletters", "retry", "1", "1")
	require.Equal(t, 0, code)
	assert.Equal(t, "retried 1 dead letter: the running receiver works them now\n", out)
	assert.Empty(t, stderr, "an id given twice is one job")
}

// Run from examples/receiver's directory without DATABASE_URL, the command
// finds the receiver's default database, receiver.db, and says so.
func TestCommandFindsTheReceiversDefaultDatabase(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_, stderr, code := runCLI("", "status")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "DATABASE_URL is not set, and there is no receiver.db here")

	ctx := context.Background()
	ib, err := inbox.Open(ctx, "sqlite://"+filepath.Join(dir, "receiver.db"), webhooks.NewRouter(), inbox.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	require.NoError(t, ib.Start(ctx))
	defer ib.Stop(ctx)
	out, stderr, code := runCLI("", "status", "--json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "DATABASE_URL is not set: using receiver.db, examples/receiver's default")
	assert.Contains(t, out, `"waiting": 0`)
}
