package webhookstest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func ExampleServer_Trigger() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))

	// The handler under test; it learns the secret once the webhook exists.
	var verifier *webhooks.Verifier
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			event, _ := webhooks.EventFromContext(r.Context())
			fmt.Println("received", event.Type)
		})).ServeHTTP(w, r)
	}))
	defer receiver.Close()

	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: receiver.URL})
	if err != nil {
		log.Fatal(err)
	}
	hook, _ = client.Get(ctx, hook.ID)
	verifier, _ = webhooks.NewVerifier([]string{hook.Secret})

	deliveries, err := srv.Trigger(ctx, webhooks.EventEmailOpened, map[string]any{"email": "jane@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range deliveries {
		fmt.Println(d.StatusCode, d.Attempts, d.OK())
	}
	// Output:
	// received Email.Opened
	// 200 1 true
}

func ExampleServer_FailNext() {
	srv := webhookstest.NewServer()
	defer srv.Close()
	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()), webhooks.WithRetryMax(0))

	srv.FailNext(1, http.StatusServiceUnavailable, 0)
	_, err := client.List(context.Background(), nil)
	fmt.Println(err)
	// Output: webhooks: GET /webhooks: 503 Service Unavailable: fault injected by webhookstest
}

func ExampleNewSignedRequest() {
	verifier, _ := webhooks.NewVerifier([]string{"test secret"})
	handler := verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, webhookstest.NewSignedRequest("/webhooks/cakemail", []byte(`{"event":"Email.Opened","data":{}}`), "test secret"))
	fmt.Println(rec.Code)
	// Output: 204
}
