package inbox_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// A service that already runs River on Postgres registers the inbox's worker
// on its own client, acknowledges deliveries by inserting through that
// client, and writes its effects with its own pgx code in the job's
// transaction. The tests point DATABASE_URL at a throwaway Postgres.
func Example_bringYourOwnRiver() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	// The service's own migrations: River's tables, and its own.
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		panic(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		panic(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE opens (email TEXT PRIMARY KEY)`); err != nil {
		panic(err)
	}

	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailOpened, webhooks.HandleData(func(ctx context.Context, e *webhooks.Event, d webhooks.EmailData) error {
		tx, err := inbox.DriverTx[pgx.Tx](ctx) // the job's transaction: it commits with the job's completion
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO opens (email) VALUES ($1)`, d.Email)
		return err
	}))

	workers := river.NewWorkers()
	river.AddWorker(workers, inbox.NewWorker[pgx.Tx](router))
	config := &river.Config{Workers: workers} // the service's own settings
	// The inbox's needs: its queue, and completed jobs kept as long as the
	// duplicate window, since they are how duplicates are recognised.
	if err := inbox.RiverConfig(config); err != nil {
		panic(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), config)
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	completed, stopSubscription := client.Subscribe(river.EventKindJobCompleted)
	defer stopSubscription()
	acceptor := inbox.NewAcceptor(client)
	verifier, err := webhooks.NewVerifier([]string{"whsec-example"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", verifier.Middleware(acceptor))

	// Cakemail delivers an open, then the same delivery again.
	body := []byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{"email":"ada@example.com"}}`, time.Now().Unix()))
	for range 2 {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, webhookstest.NewSignedRequest("/webhooks/cakemail", body, "whsec-example"))
		fmt.Println(w.Code, http.StatusText(w.Code))
	}
	<-completed
	var email string
	if err := pool.QueryRow(ctx, `SELECT string_agg(email, ',') FROM opens`).Scan(&email); err != nil {
		panic(err)
	}
	fmt.Println("opened by", email)

	acceptor.Close()
	if err := client.Stop(ctx); err != nil && !strings.Contains(err.Error(), "context") {
		panic(err)
	}
	// Output:
	// 202 Accepted
	// 200 OK
	// opened by ada@example.com
}
