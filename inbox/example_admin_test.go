package inbox_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// The admin handler serves the operator's scripts and River UI's own pages,
// and refuses what a web page in the operator's browser could send: a
// request for a name rebound to the admin address, a cross-site change.
func ExampleInbox_AdminHandler() {
	dir, err := os.MkdirTemp("", "inbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	ib, err := inbox.Open(ctx, "sqlite://"+filepath.Join(dir, "inbox.db"), webhooks.NewRouter(),
		inbox.WithAdminHosts("admin.example.com")) // the name a proxy in front serves it by
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Stop(ctx)
	admin := httptest.NewServer(ib.AdminHandler()) // in production: its own loopback address
	defer admin.Close()

	send := func(method, path, host string, header http.Header) {
		req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(`{"ids":["1"]}`))
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			fmt.Printf("%s %s: %d\n", method, path, resp.StatusCode)
			return
		}
		fmt.Printf("%s %s: %d %.50s\n", method, path, resp.StatusCode, body)
	}
	send("GET", "/metrics", "", nil)                        // Prometheus, curl
	send("GET", "/metrics", "admin.example.com:443", nil)   // through the proxy
	send("GET", "/metrics", "rebind.attacker.example", nil) // DNS rebinding
	send("POST", "/riverui/api/jobs/delete", "", http.Header{"Origin": {"http://attacker.example"}, "Sec-Fetch-Site": {"cross-site"}})
	send("POST", "/riverui/api/jobs/retry", "", http.Header{"Sec-Fetch-Site": {"same-origin"}}) // River UI's button
	// Output:
	// GET /metrics: 200
	// GET /metrics: 200
	// GET /metrics: 421 cakemail-inbox admin: refused: host "rebind.attack
	// POST /riverui/api/jobs/delete: 403 cakemail-inbox admin: refused: a web page of anoth
	// POST /riverui/api/jobs/retry: 409 {"message":"Retried 0 of 1 jobs. Only a dead lette
}
