package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The built receiver with its default admin settings (a loopback address,
// no password) keeps its admin port for the operator: a web page's
// cross-site POSTs to River UI's retry and delete change nothing, a rebound
// host name is refused, and the operator's own plain requests are served.
func TestAdminPortRefusesOtherSites(t *testing.T) {
	t.Parallel()
	r, adminPort := startReceiver(t, "CAKEMAIL_WEBHOOK_SECRET="+testSecret) // ADMIN_ADDR on 127.0.0.1, no ADMIN_PASSWORD
	defer r.kill()
	port, dir := r.port, r.dir

	client := &http.Client{Timeout: 5 * time.Second}
	now := time.Now().Unix()
	for i := range 3 {
		body := fmt.Appendf(nil, `{"event":"Email.Clicked","created_on":%d,"data":{"email":"done%d@example.com"}}`, now, i)
		code, err := deliver(context.Background(), client, port, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, code)
	}
	// email is not a string: the handler can never take it, a dead letter.
	code, err := deliver(context.Background(), client, port, fmt.Appendf(nil, `{"event":"Email.Opened","created_on":%d,"data":{"email":12345}}`, now))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "receiver.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	jobs := func() string { // every job's id, state and attempt: a run or a deletion shows
		var s string
		require.NoError(t, db.QueryRow(`SELECT group_concat(id || ' ' || state || ' ' || attempt, ', ')
			FROM (SELECT * FROM river_job ORDER BY id)`).Scan(&s))
		return s
	}
	require.Eventually(t, func() bool { return jobs() == "1 completed 1, 2 completed 1, 3 completed 1, 4 cancelled 1" },
		10*time.Second, 20*time.Millisecond, "the deliveries were not worked: %s", jobs())

	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	send := func(method, path, body string, headers map[string]string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, admin+path, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range headers {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, string(b)
	}
	const allJobs = `{"ids":["1","2","3","4"]}`

	// A page of another site POSTs what a form or fetch can send without asking.
	for _, headers := range []map[string]string{
		{"Content-Type": "text/plain", "Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"},
		{"Content-Type": "text/plain", "Origin": "http://attacker.example"},
		{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"},
	} {
		for _, path := range []string{"/riverui/api/jobs/retry", "/riverui/api/jobs/delete", "/riverui/api/jobs/cancel"} {
			code, _, body := send(http.MethodPost, path, allJobs, headers)
			assert.Equal(t, http.StatusForbidden, code, "%s %v: %s", path, headers, body)
			assert.Contains(t, body, "a web page of another site sent this request")
		}
	}
	assert.Equal(t, "1 completed 1, 2 completed 1, 3 completed 1, 4 cancelled 1", jobs(), "a cross-site request changed a job")

	// DNS rebinding: the attacker's name, pointed at 127.0.0.1.
	for _, host := range []string{"rebind.attacker.example", fmt.Sprintf("rebind.attacker.example:%d", adminPort)} {
		for _, path := range []string{"/riverui/api/jobs/4", "/riverui/api/jobs?state=cancelled", "/metrics", "/riverui/"} {
			code, _, body := send(http.MethodGet, path, "", map[string]string{"Host": host})
			assert.Equal(t, http.StatusMisdirectedRequest, code, "%s %s", host, path)
			assert.Contains(t, body, "is neither this admin address nor a loopback name")
			assert.NotContains(t, body, "12345")
		}
		code, _, _ := send(http.MethodPost, "/riverui/api/jobs/delete", allJobs, map[string]string{"Host": host})
		assert.Equal(t, http.StatusMisdirectedRequest, code, host)
	}
	assert.Equal(t, "1 completed 1, 2 completed 1, 3 completed 1, 4 cancelled 1", jobs(), "a rebound request changed a job")

	// The operator's own requests, as curl sends them.
	code, h, body := send(http.MethodGet, "/riverui/api/jobs/4", "", nil)
	assert.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"state":"cancelled"`)
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "frame-ancestors 'none'", h.Get("Content-Security-Policy"))
	code, _, body = send(http.MethodGet, "/metrics", "", map[string]string{"Host": fmt.Sprintf("localhost:%d", adminPort)})
	assert.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `(?m)^cakemail_inbox_dead_letters(\{[^}]*\})? 1$`, body)

	// Retry and delete from a shell: only the dead letter is theirs to take.
	code, _, body = send(http.MethodPost, "/riverui/api/jobs/retry", allJobs, nil)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "Retried 1 of 4 jobs")
	assert.Contains(t, body, "job 1 is completed: to run a completed delivery again, use cakemail-inbox replay")
	require.Eventually(t, func() bool { return jobs() == "1 completed 1, 2 completed 1, 3 completed 1, 4 cancelled 2" },
		10*time.Second, 20*time.Millisecond, "the retried dead letter did not run again: %s", jobs())
	code, _, body = send(http.MethodPost, "/riverui/api/jobs/delete", allJobs, nil)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "Deleted 1 of 4 jobs")
	assert.Contains(t, body, "a completed delivery is how a resend is recognised, and not applied twice")
	assert.Equal(t, "1 completed 1, 2 completed 1, 3 completed 1", jobs())

	require.NoError(t, r.terminate(), "SIGTERM should end in exit status 0")
	logs, err := os.ReadFile(r.logPath)
	require.NoError(t, err)
	assert.Contains(t, string(logs), `"msg":"inbox: admin request refused: cross-site"`)
	assert.Contains(t, string(logs), `"msg":"inbox: admin request refused: not a name of this admin address"`)
}

// ADMIN_HOSTS names the admin port's public names, for a proxy in front.
func TestReadConfigAdminHosts(t *testing.T) {
	t.Parallel()
	cfg, err := readConfig(func(k string) string {
		return map[string]string{"CAKEMAIL_WEBHOOK_SECRET": "s", "ADMIN_HOSTS": " admin.example.com, ,ops.example.com "}[k]
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"admin.example.com", "ops.example.com"}, cfg.adminHosts)
}
