package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// A whole service on the inbox: Open on SQLite (one process) or Postgres
// (replicas), the inbox behind the verifier in an http.Server, effects in the
// delivery's transaction, and a shutdown that loses nothing: on SIGTERM,
// stop taking requests and finish those in flight, then stop the inbox,
// which lets running jobs finish, each step with a deadline of its own from
// a fresh context.
func ExampleOpen() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "inbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	databaseURL := "sqlite://" + filepath.Join(dir, "inbox.db") // or postgres://user:pass@host/db for replicas
	secret := "whsec-example"

	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
		d, ok := inbox.DeliveryFromContext(ctx) // its Tx commits with the job: never lost, never twice
		if !ok {
			return errors.New("not run by the inbox")
		}
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // ":8080" in a real service
	if err != nil {
		log.Fatal(err)
	}
	if err := ib.Start(ctx); err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed after Shutdown

	// Cakemail delivers a bounce, then the same delivery again.
	body := []byte(fmt.Sprintf(`{"event":"Email.Bounced","created_on":%d,"data":{"email":"gone@example.com"}}`, time.Now().Unix()))
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/webhooks/cakemail", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(body, secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM) // here the example stops itself; a process manager sends it in production

	<-ctx.Done()
	// First stop taking requests: those in flight are answered, and a
	// delivery arriving now is retried by Cakemail later.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Print(err)
	}
	// Then stop the inbox: running jobs finish within the grace period, the
	// rest run again at the next start.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelStop()
	if err := ib.Stop(stopCtx); err != nil {
		log.Print(err)
	}
	fmt.Println("stopped")
	// Output:
	// 202 Accepted
	// 200 OK
	// stopped
}
