package inbox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// adminRequest is a request to the admin server with the headers given
// (Host among them), as a browser or a script would send it.
func adminRequest(t *testing.T, adminURL, method, path, body string, headers map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// The admin port serves its operator, not the sites the operator's browser
// opens: a page's cross-site POST changes nothing, a rebound host name gets
// nothing, and no page frames it; curl, scripts and Prometheus are served.
func TestAdminHandlerServesItsOperatorOnly(t *testing.T) {
	t.Parallel()
	router := webhooks.NewRouter()
	router.OnUnhandled(func(context.Context, *webhooks.Event) error {
		return fmt.Errorf("%w: handler bug", webhooks.ErrInvalidEvent)
	})
	ti := startInbox(t, databases[0].url(t), router, inbox.WithAdminHosts("Admin.Example.com", "[2001:DB8::7]"))
	admin := httptest.NewServer(ti.ib.AdminHandler())
	t.Cleanup(admin.Close)
	require.Equal(t, http.StatusAccepted, ti.post(payload("Email.Bounced", "guard@example.com"), testSecret))
	ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'cancelled'`)
	const job = "/riverui/api/jobs/1"
	own := strings.TrimPrefix(admin.URL, "http://")
	port := own[strings.LastIndex(own, ":")+1:]

	// Hosts: the address reached, loopback names, the configured names.
	for _, host := range []string{own, "localhost:" + port, "LOCALHOST", "127.0.0.1", "127.0.0.2:80", "[::1]:" + port, "[::1]",
		"admin.example.com:8443", "ADMIN.example.com", "[2001:db8::7]:9091"} {
		code, h, body := adminRequest(t, admin.URL, http.MethodGet, job, "", map[string]string{"Host": host})
		assert.Equal(t, http.StatusOK, code, "%s: %s", host, body)
		assert.Contains(t, body, "handler bug", host)
		assert.Equal(t, "no-store", h.Get("Cache-Control"), host)
	}
	for _, host := range []string{"rebind.attacker.example", "rebind.attacker.example:" + port, "localhost.attacker.example:" + port,
		"10.9.8.7:" + port, "admin.example.com.attacker.example", "localhost.:" + port} {
		for _, path := range []string{job, "/metrics", "/riverui/", "/"} {
			code, h, body := adminRequest(t, admin.URL, http.MethodGet, path, "", map[string]string{"Host": host})
			assert.Equal(t, http.StatusMisdirectedRequest, code, "%s %s", host, path)
			assert.Contains(t, body, fmt.Sprintf("refused: host %q is neither this admin address nor a loopback name", host))
			assert.Contains(t, body, "WithAdminHosts")
			assert.NotContains(t, body, "handler bug")
			assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
		}
		code, _, _ := adminRequest(t, admin.URL, http.MethodPost, "/riverui/api/jobs/delete", `{"ids":["1"]}`, map[string]string{"Host": host})
		assert.Equal(t, http.StatusMisdirectedRequest, code, host)
	}
	assert.Contains(t, ti.logs.String(), `"msg":"inbox: admin request refused: not a name of this admin address","host":"rebind.attacker.example"`)

	// Cross-site changes, however the browser marks them, change nothing.
	for _, headers := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "http://attacker.example", "Content-Type": "text/plain"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://other." + own},
		{"Origin": "http://attacker.example", "Content-Type": "text/plain"}, // a browser without Sec-Fetch-Site
		{"Sec-Fetch-Site": "cross-site"},
	} {
		for _, path := range []string{"/riverui/api/jobs/delete", "/riverui/api/jobs/retry", "/riverui/api/jobs/cancel"} {
			code, h, body := adminRequest(t, admin.URL, http.MethodPost, path, `{"ids":["1"]}`, headers)
			assert.Equal(t, http.StatusForbidden, code, "%v %s", headers, path)
			assert.Contains(t, body, "refused: a web page of another site sent this request")
			assert.Equal(t, "frame-ancestors 'none'", h.Get("Content-Security-Policy"))
		}
		code, _, _ := adminRequest(t, admin.URL, http.MethodPut, "/riverui/api/queues/default/pause", "", headers)
		assert.Equal(t, http.StatusForbidden, code, "%v", headers)
	}
	assert.EqualValues(t, 1, ti.count(t, `SELECT count(*) FROM river_job WHERE id = 1 AND state = 'cancelled' AND attempt = 1`),
		"a refused request changed the dead letter")

	// River UI's own button: a same-origin fetch, its body text/plain.
	code, h, body := adminRequest(t, admin.URL, http.MethodPost, "/riverui/api/jobs/retry", `{"ids":["1"]}`, map[string]string{
		"Sec-Fetch-Site": "same-origin", "Origin": admin.URL, "Content-Type": "text/plain;charset=UTF-8", "Accept": "application/json"})
	assert.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE id = 1 AND state = 'cancelled' AND attempt = 2`)

	// curl: no Origin, no Sec-Fetch-Site.
	code, _, body = adminRequest(t, admin.URL, http.MethodPost, "/riverui/api/jobs/delete", `{"ids":[1]}`, nil)
	assert.Equal(t, http.StatusOK, code, body)
	assert.EqualValues(t, 0, ti.count(t, `SELECT count(*) FROM river_job`))
	code, h, body = adminRequest(t, admin.URL, http.MethodGet, "/metrics", "", map[string]string{"User-Agent": "Prometheus/3.0.0"})
	assert.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `(?m)^cakemail_inbox_dead_letters(\{[^}]*\})? 0$`, body)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "frame-ancestors 'none'", h.Get("Content-Security-Policy"))

	// A change River UI does not make through the inbox is not served.
	code, _, _ = adminRequest(t, admin.URL, http.MethodPost, "/riverui/api/jobs/insert", `{}`, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _, _ = adminRequest(t, admin.URL, http.MethodDelete, "/riverui/api/jobs/1", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
}

func TestWithAdminHostsRefusesWhatIsNotAHostName(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"", "https://admin.example.com", "admin.example.com:8443", "admin.example.com/riverui", "user@admin.example.com", "admin example"} {
		_, err := inbox.Open(context.Background(), "sqlite:///nonexistent/dir/never.db", recordingRouter(), inbox.WithAdminHosts(host))
		require.Error(t, err, host)
		assert.Contains(t, err.Error(), "WithAdminHosts", host)
		assert.Contains(t, err.Error(), "want a host name or IP address, without scheme or port", host)
	}
}
