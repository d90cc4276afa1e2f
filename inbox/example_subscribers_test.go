package inbox_test

import (
	"context"
	"database/sql"
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

// exampleInbox opens and starts an SQLite inbox in a temporary directory
// behind a verifier, for the examples; its cleanup stops it.
func exampleInbox(router *webhooks.Router, opts ...inbox.Option) (h http.Handler, db *sql.DB, cleanup func()) {
	dir, err := os.MkdirTemp("", "inbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(dir, "inbox.db")
	ib, err := inbox.Open(ctx, "sqlite://"+path, router, append(opts, inbox.WithLogger(discard()))...)
	if err != nil {
		log.Fatal(err)
	}
	if err := ib.Start(ctx); err != nil {
		log.Fatal(err)
	}
	verifier, err := webhooks.NewVerifier([]string{"whsec-example"})
	if err != nil {
		log.Fatal(err)
	}
	if db, err = sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)"); err != nil {
		log.Fatal(err)
	}
	return verifier.Middleware(ib), db, func() { db.Close(); ib.Stop(ctx); os.RemoveAll(dir) }
}

// deliverExample posts a signed delivery and prints the answer.
func deliverExample(h http.Handler, body string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, webhookstest.NewSignedRequest("/", []byte(body), "whsec-example"))
	fmt.Println(w.Code, http.StatusText(w.Code))
}

// waitRows waits until query counts want rows.
func waitRows(db *sql.DB, want int, query string) {
	for range 500 {
		var n int
		if db.QueryRow(query).Scan(&n) == nil && n == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Fatalf("%s: never %d", query, want)
}

// A bounce updates the service's own table and is pushed to a CRM: two
// subscribers, each with its own job, retries and dead letters, so the CRM
// being down never holds back the table.
func ExampleWithSubscriber() {
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx)
		_, err := d.Tx.Exec(ctx, `INSERT INTO bounces (body_sha256) VALUES ($1)`, d.BodySHA256)
		return err
	})
	pushBounceToCRM := func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx)
		fmt.Println("CRM told of the bounce by subscriber", d.Subscriber) // a call to another service
		return nil
	}

	crm := webhooks.NewRouter()
	crm.On(webhooks.EventEmailBounced, pushBounceToCRM) // a call to another service
	h, db, cleanup := exampleInbox(router, inbox.WithSubscriber("crm", crm),
		inbox.WithDDL(`CREATE TABLE IF NOT EXISTS bounces (body_sha256 TEXT PRIMARY KEY)`))
	defer cleanup()

	deliverExample(h, fmt.Sprintf(`{"event":"Email.Bounced","created_on":%d,"data":{"email":"gone@example.com"}}`, time.Now().Unix()))
	waitRows(db, 2, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	waitRows(db, 1, `SELECT count(*) FROM bounces`)
	fmt.Println("bounces recorded: 1")
	// Output:
	// 202 Accepted
	// CRM told of the bounce by subscriber crm
	// bounces recorded: 1
}

// A contact unsubscribes, and a Contact.Added created earlier arrives late:
// the contact stays unsubscribed.
func ExampleWithOrderKey() {
	router := webhooks.NewRouter()
	setMailable := func(mailable bool) webhooks.HandlerFunc {
		return webhooks.HandleData(func(ctx context.Context, e *webhooks.Event, c webhooks.EmailData) error {
			d, _ := inbox.DeliveryFromContext(ctx)
			_, err := d.Tx.Exec(ctx, `INSERT INTO contacts (contact_id, mailable) VALUES ($1, $2)
				ON CONFLICT (contact_id) DO UPDATE SET mailable = excluded.mailable`, c.ContactID, mailable)
			return err
		})
	}
	router.On(webhooks.EventContactAdded, setMailable(true))
	router.On(webhooks.EventEmailUnsubscribed, setMailable(false))
	h, db, cleanup := exampleInbox(router,
		inbox.WithDDL(`CREATE TABLE IF NOT EXISTS contacts (contact_id TEXT PRIMARY KEY, mailable BOOLEAN NOT NULL)`),
		inbox.WithOrderKey(func(e *webhooks.Event) (string, bool) {
			var d webhooks.EmailData
			if e.Type == webhooks.EventEmailOpened || e.DecodeData(&d) != nil || d.ContactID == "" {
				return "", false // counted, not state: never held back
			}
			return "contact:" + d.ContactID, true
		}))
	defer cleanup()

	now := time.Now().Unix()
	deliverExample(h, fmt.Sprintf(`{"event":"Email.Unsubscribed","created_on":%d,"data":{"contact_id":501}}`, now))
	waitRows(db, 1, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	deliverExample(h, fmt.Sprintf(`{"event":"Contact.Added","created_on":%d,"data":{"contact_id":501}}`, now-60))
	waitRows(db, 2, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	var mailable bool
	if err := db.QueryRow(`SELECT mailable FROM contacts WHERE contact_id = '501'`).Scan(&mailable); err != nil {
		log.Fatal(err)
	}
	fmt.Println("mailable:", mailable)
	// Output:
	// 202 Accepted
	// 202 Accepted
	// mailable: false
}
