package inbox_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// A service receives deliveries durably in a dozen lines: Open on SQLite (one
// process) or Postgres (replicas), mount the inbox behind the verifier, and
// write effects in the delivery's transaction.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "inbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	databaseURL := "sqlite://" + filepath.Join(dir, "inbox.db") // or postgres://user:pass@host/db for replicas
	secret := "whsec-example"
	ctx := context.Background()

	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx) // its Tx commits with the job: never lost, never twice
		_, err := d.Tx.Exec(ctx, `INSERT INTO bounces (body_sha256) VALUES ($1)`, d.BodySHA256)
		return err // an error: River retries with backoff, then keeps it as a dead letter
	})
	ib, err := inbox.Open(ctx, databaseURL, router,
		inbox.WithDDL(`CREATE TABLE IF NOT EXISTS bounces (body_sha256 TEXT PRIMARY KEY)`))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithOnReject(ib.OnReject))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", verifier.Middleware(ib)) // 202 once stored, 200 for a duplicate
	mux.Handle("GET /healthz", ib.HealthHandler())
	if err := ib.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer ib.Stop(ctx) // stops accepting, answers what it took, lets running jobs finish

	body := []byte(fmt.Sprintf(`{"event":"Email.Bounced","created_on":%d,"data":{"email":"gone@example.com"}}`, time.Now().Unix()))
	for range 2 {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, webhookstest.NewSignedRequest("/webhooks/cakemail", body, secret))
		fmt.Println(w.Code, http.StatusText(w.Code))
	}
	// Output:
	// 202 Accepted
	// 200 OK
}
