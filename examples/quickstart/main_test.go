package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func TestRunFakeWalksEveryStep(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, runFake(context.Background(), &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, prefix := range []string{"1. ", "2. Created webhook", "3. Fetched its signing secret", "4. Receiver listening",
		"5. Cakemail delivered Email.Opened (HTTP 200)", "6. Updated the rate limit to 10 per minute",
		"7. Archived the webhook (status archived); a second event made 0 deliveries", "8. "} {
		require.Greater(t, len(lines), i)
		assert.True(t, strings.HasPrefix(lines[i], prefix), "line %d: %q, want %q", i, lines[i], prefix)
	}
	assert.Contains(t, out.String(), "jane@example.com")
	assert.Contains(t, lines[8], "archived", "the listing includes the archived webhook")
	assert.Equal(t, "Done.", lines[len(lines)-1])
}

func TestRunRealIsReadOnlyWithoutWrite(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	t.Setenv("CAKEMAIL_BASE_URL", srv.URL)
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", srv.Token())
	t.Setenv("CAKEMAIL_ACCOUNT_ID", "")

	var out bytes.Buffer
	require.NoError(t, runReal(context.Background(), &out, false, ""))
	assert.Contains(t, out.String(), "0 webhook(s).")
	assert.Contains(t, out.String(), "Read-only run")
	for _, r := range srv.Requests() {
		assert.Equal(t, http.MethodGet, r.Method, "a read-only run only lists: %s %s", r.Method, r.Path)
	}

	out.Reset()
	assert.Error(t, runReal(context.Background(), &out, true, ""), "-write needs -url")

	out.Reset()
	require.NoError(t, runReal(context.Background(), &out, true, "https://example.com/hooks"))
	assert.Contains(t, out.String(), "Archived webhook")
	var id string
	_, err := fmt.Sscanf(out.String()[strings.Index(out.String(), "Created webhook "):], "Created webhook %s", &id)
	require.NoError(t, err)
	hook, ok := srv.Webhook(id)
	require.True(t, ok)
	assert.Equal(t, webhooks.StatusArchived, hook.Status)
	assert.NotContains(t, out.String(), hook.Secret, "the secret is never printed")
	posts := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPost && r.Path == "/webhooks" {
			posts++
		}
	}
	assert.Equal(t, 1, posts)
}

func TestHasCredentials(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	assert.False(t, hasCredentials(env(nil)))
	assert.True(t, hasCredentials(env(map[string]string{"CAKEMAIL_ACCESS_TOKEN": "t"})))
	assert.False(t, hasCredentials(env(map[string]string{"CAKEMAIL_USERNAME": "u"})))
	assert.True(t, hasCredentials(env(map[string]string{"CAKEMAIL_USERNAME": "u", "CAKEMAIL_PASSWORD": "p"})))
}
