package webhooks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func ExampleRouter() {
	verifier, err := webhooks.NewVerifier([]string{"secret"})
	if err != nil {
		log.Fatal(err)
	}
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
		fmt.Println("opened in account", e.AccountID, "sent as", e.RawType)
		return nil
	})
	router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
		return errors.New("the database is unavailable") // 500: Cakemail delivers it again
	})
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		fmt.Println("no route for", e.Type)
		return nil
	})
	// Handler errors and panics are reported here; slog.Default() when unset.
	router.ErrorLog = slog.New(slog.NewTextHandler(io.Discard, nil))
	handler := verifier.Middleware(router)

	for _, body := range []string{
		`{"event":"email.opened","account_id":7,"data":{}}`, // the CLI guide's spelling
		`{"event":"Email.Bounced","account_id":7,"data":{}}`,
		`{"event":"Brand.NewEvent","account_id":7,"data":{}}`,
	} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, webhookstest.NewSignedRequest("/webhooks/cakemail", []byte(body), "secret"))
		fmt.Println(rec.Code)
	}
	// Output:
	// opened in account 7 sent as email.opened
	// 200
	// 500
	// no route for Brand.NewEvent
	// 200
}

func ExampleHandleData() {
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailClicked, webhooks.HandleData(func(ctx context.Context, e *webhooks.Event, d webhooks.EmailData) error {
		fmt.Println(d.Email, "clicked in campaign", d.CampaignID)
		fmt.Println("link:", string(d.Extra["link"])) // no document shows it: kept as sent
		return nil
	}))

	// A queue worker runs the same routes with Dispatch.
	event, err := webhooks.ParseEvent([]byte(`{"event":"Email.Clicked","account_id":123,"created_on":1767268800,` +
		`"data":{"email":"jane.doe@example.com","contact_id":501,"list_id":12,"campaign_id":790,` +
		`"message_id":"msg_3f2a9c1d","link":"https://www.example.com/spring-sale"}}`))
	if err != nil {
		log.Fatal(err)
	}
	if err := router.Dispatch(context.Background(), event); err != nil {
		log.Fatal(err)
	}
	// Output:
	// jane.doe@example.com clicked in campaign 790
	// link: "https://www.example.com/spring-sale"
}

func ExampleEmailData() {
	// The same event as Cakemail's CLI guide and its API guide print it: ids as
	// numbers or strings, the address under email or email_address.
	for _, body := range []string{
		`{"event":"email.opened","timestamp":"2024-03-15T11:45:00Z","data":{"campaign_id":790,` +
			`"contact_id":12345678901234567890,"email":"user@example.com","user_agent":"Mozilla/5.0","ip_address":"192.168.1.1"}}`,
		`{"event":"Email.Opened","timestamp":"2026-04-10T14:32:00Z","data":{"email_id":"e_abc123","contact_id":"c_def456",` +
			`"campaign_id":"cmp_ghi789","list_id":"lst_jkl012","email_address":"recipient@example.com","opened_at":"2026-04-10T14:32:00Z"}}`,
	} {
		event, err := webhooks.ParseEvent([]byte(body))
		if err != nil {
			log.Fatal(err)
		}
		var d webhooks.EmailData
		if err := event.DecodeData(&d); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: contact %s, campaign %s, %s\n", event.Type, d.ContactID, d.CampaignID, d.Email)
		if !d.OpenedAt.IsZero() {
			fmt.Println("opened at", d.OpenedAt)
		}
	}

	// An id that cannot be one is refused: through HandleData, the handler does
	// not run and package inbox makes the delivery a dead letter at once.
	event, _ := webhooks.ParseEvent([]byte(`{"event":"Email.Opened","data":{"contact_id":{"id":501}}}`))
	var d webhooks.EmailData
	err := event.DecodeData(&d)
	fmt.Println(errors.Is(err, webhooks.ErrInvalidEvent), err)
	// Output:
	// Email.Opened: contact 12345678901234567890, campaign 790, user@example.com
	// Email.Opened: contact c_def456, campaign cmp_ghi789, recipient@example.com
	// opened at 2026-04-10 14:32:00 +0000 UTC
	// true webhooks: decoding Email.Opened data: webhooks: invalid event payload: data.contact_id is an object, not a string or an integer
}

func ExampleWithOnReject() {
	verifier, err := webhooks.NewVerifier([]string{"secret"},
		webhooks.WithOnReject(func(r *http.Request, err error) {
			// Log why, never the header: err holds no signature, MAC or secret.
			fmt.Println("refused", r.URL.Path+":", err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	handler := verifier.Middleware(webhooks.NewRouter())

	body := []byte(`{"event":"Email.Opened","data":{}}`)
	for _, secret := range []string{"secret", "a stale secret"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, webhookstest.NewSignedRequest("/webhooks/cakemail", body, secret))
		fmt.Println(strings.TrimSpace(fmt.Sprint(rec.Code, " ", rec.Body.String())))
	}
	// Output:
	// 200
	// refused /webhooks/cakemail: webhooks: signature does not match
	// 401 invalid signature
}

func ExampleClient_Apply() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))

	sub := &webhooks.Subscription{
		URL:    "https://analytics.example.com/campaigns",
		Events: []webhooks.EventType{"email.opened", "email.clicked"}, // any documented spelling
	}
	for run := 1; run <= 2; run++ {
		changes, err := client.Apply(ctx, sub, nil)
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range changes {
			fmt.Println(run, c.Action, c.Event)
		}
	}
	secrets, err := client.Secrets(ctx, sub.URL) // for CAKEMAIL_WEBHOOK_SECRET, comma-separated
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(secrets), "secrets")
	// Output:
	// 1 create Email.Opened
	// 1 create Email.Clicked
	// 2 unchanged Email.Opened
	// 2 unchanged Email.Clicked
	// 2 secrets
}

func ExampleClient_Rotate() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))
	old, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: "https://example.com/hooks"})
	if err != nil {
		log.Fatal(err)
	}

	// 1. Create the replacement: same event, URL and rate limit, a new secret.
	replacement, err := client.Rotate(ctx, old.ID)
	if err != nil {
		log.Fatal(err)
	}
	// 2. Deploy the receiver with both secrets, old and new.
	secrets, _ := client.Secrets(ctx, old.URL)
	fmt.Println(len(secrets), "secrets to deploy")
	// 3. Once it runs, retire the old webhook.
	if _, err := client.Archive(ctx, old.ID); err != nil {
		log.Fatal(err)
	}
	secrets, _ = client.Secrets(ctx, old.URL)
	fmt.Println(secrets[0] == replacement.Secret)
	// Output:
	// 2 secrets to deploy
	// true
}

func ExampleRouter_Dispatch() {
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailBounced, func(ctx context.Context, e *webhooks.Event) error {
		fmt.Println("bounce in account", e.AccountID)
		return nil
	})

	// The HTTP side stored each verified body in a durable queue before
	// answering 2xx; this is the queue's worker.
	work := func(ctx context.Context, body []byte) error {
		event, err := webhooks.ParseEvent(body)
		if err != nil {
			return err // not an event: retrying cannot help, so discard the job
		}
		return router.Dispatch(ctx, event) // an error: let the queue retry the job
	}

	queue := [][]byte{[]byte(`{"event":"Email.Bounced","account_id":7,"data":{}}`)}
	for _, body := range queue {
		if err := work(context.Background(), body); err != nil {
			log.Fatal(err)
		}
	}
	// Output: bounce in account 7
}
