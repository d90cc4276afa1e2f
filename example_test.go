package webhooks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func ExampleVerify() {
	secret := "the webhook's secret, from Client.Get"
	body := []byte(`{"event":"Email.Opened","account_id":123,"created_on":1700000000,"data":{}}`)
	header := webhooks.Sign(body, secret) // what Cakemail sends in X-Signature

	fmt.Println(webhooks.Verify(body, header, secret))
	fmt.Println(webhooks.Verify(body, "sha256="+webhooks.SignHex(body, secret), secret))

	err := webhooks.Verify(append(body, '\n'), header, secret)
	fmt.Println(errors.Is(err, webhooks.ErrSignatureMismatch))
	// Output:
	// <nil>
	// <nil>
	// true
}

func ExampleConstructEvent() {
	secret := "the webhook's secret"
	body := []byte(`{"event":"Email.Clicked","account_id":123,"created_on":1700000000,"data":{"email":"jane@example.com"}}`)

	event, err := webhooks.ConstructEvent(body, webhooks.Sign(body, secret), secret)
	if err != nil {
		log.Fatal(err)
	}
	var data struct{ Email string }
	if err := event.DecodeData(&data); err != nil {
		log.Fatal(err)
	}
	fmt.Println(event.Type, event.AccountID, event.CreatedAt.UTC().Format("2006-01-02"), data.Email)
	// Output: Email.Clicked 123 2023-11-14 jane@example.com
}

func ExampleVerifier_Middleware() {
	verifier, err := webhooks.NewVerifier([]string{"new secret", "old secret"}) // both pass during a rotation
	if err != nil {
		log.Fatal(err)
	}
	handler := verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := webhooks.EventFromContext(r.Context())
		switch event.Type {
		case webhooks.EventEmailOpened:
			fmt.Println("opened, account", event.AccountID)
		default:
			fmt.Println("ignored", event.Type)
		}
	}))

	body := []byte(`{"event":"Email.Opened","account_id":7,"created_on":1700000000,"data":{}}`)
	for _, secret := range []string{"old secret", "someone else's"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, webhookstest.NewSignedRequest("/webhooks/cakemail", body, secret))
		fmt.Println(rec.Code)
	}
	// Output:
	// opened, account 7
	// 200
	// 401
}

func ExampleParseEventType() {
	for _, name := range []string{"email.opened", "email.spam_complaint", "campaign.cancelled", "Email.Opend"} {
		t, err := webhooks.ParseEventType(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(t)
	}
	// Output:
	// Email.Opened
	// Email.ReportedAsSpam
	// Campaign.Canceled
	// webhooks: unknown event type "Email.Opend"; did you mean "Email.Opened"?
}

func ExampleParseEvent() {
	// The guide's shape: an RFC 3339 timestamp instead of created_on.
	event, err := webhooks.ParseEvent([]byte(`{"event":"Contact.Unsubscribed","timestamp":"2024-05-01T12:00:00Z","data":{"contact_id":9}}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(event.Type, event.Type.Known(), event.CreatedAt.Format("2006-01-02 15:04"))
	// Output: Contact.Unsubscribed true 2024-05-01 12:00
}

func ExampleNewClient() {
	srv := webhookstest.NewServer() // an in-memory Cakemail; use DefaultBaseURL in production
	defer srv.Close()
	ctx := context.Background()

	client, err := webhooks.NewClient(
		webhooks.WithBaseURL(srv.URL),
		webhooks.WithCredentials(webhookstest.DefaultUsername, webhookstest.DefaultPassword),
	)
	if err != nil {
		log.Fatal(err)
	}
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: "https://example.com/webhooks/cakemail"})
	if err != nil {
		log.Fatal(err)
	}
	hook, err = client.Update(ctx, hook.ID, &webhooks.UpdateParams{RateLimit: webhooks.Ptr(10), RateLimitPeriod: webhooks.Ptr(webhooks.PerMinute)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hook.Event, hook.Status, hook.RateLimit, hook.RateLimitPeriod)

	hook, err = client.Archive(ctx, hook.ID) // the API has no delete
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hook.Status)
	// Output:
	// Email.Opened active 10 minute
	// archived
}

func ExampleClient_All() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))
	for _, event := range []webhooks.EventType{webhooks.EventEmailOpened, webhooks.EventEmailClicked, webhooks.EventEmailBounced} {
		if _, err := client.Create(ctx, &webhooks.CreateParams{Event: event, URL: "https://example.com/hooks"}); err != nil {
			log.Fatal(err)
		}
	}

	// All fetches page after page (two per page here) until the loop ends.
	for hook, err := range client.All(ctx, &webhooks.ListOptions{PerPage: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(hook.Event)
	}
	// Output:
	// Email.Opened
	// Email.Clicked
	// Email.Bounced
}

func ExampleClient_Get() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))

	_, err := client.Get(context.Background(), "no-such-webhook")
	fmt.Println(errors.Is(err, webhooks.ErrNotFound))
	var apiErr *webhooks.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Method, apiErr.Path)
	}
	// Output:
	// true
	// 404 GET /webhooks/no-such-webhook
}

func ExampleClient_ForAccount() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	subAccount := srv.AddAccount(webhookstest.DefaultUsername)
	ctx := context.Background()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))

	sub := client.ForAccount(subAccount) // same connections and token
	if _, err := sub.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventContactAdded, URL: "https://example.com/hooks"}); err != nil {
		log.Fatal(err)
	}
	mine, _ := client.List(ctx, nil)
	theirs, _ := sub.List(ctx, nil)
	fmt.Println(len(mine.Webhooks), len(theirs.Webhooks))
	// Output: 0 1
}

func ExampleVerifier_VerifyRequest() {
	verifier, _ := webhooks.NewVerifier([]string{"secret"})
	req := webhookstest.NewSignedRequest("/hook", []byte(`{"event":"Email.Opened","data":{}}`), "secret")

	body, err := verifier.VerifyRequest(req)
	fmt.Println(string(body), err)
	again, _ := io.ReadAll(req.Body) // the body is still there for the next handler
	fmt.Println(string(again) == string(body))
	// Output:
	// {"event":"Email.Opened","data":{}} <nil>
	// true
}
