package webhookstest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// newReceiverHandler stands for the handler a service ships: it verifies with
// the secrets it is given, so it answers 200 only to a delivery signed with
// the webhook's secret, and 401 to anything else.
func newReceiverHandler(secrets string) http.Handler {
	verifier, err := webhooks.NewVerifier(strings.Split(secrets, ","))
	if err != nil {
		panic(err)
	}
	router := webhooks.NewRouter()
	router.On(webhooks.EventEmailOpened, func(ctx context.Context, e *webhooks.Event) error {
		if e.AccountID == 0 {
			return errors.New("no account in the event")
		}
		return nil
	})
	return verifier.Middleware(router)
}

// TestMyReceiver is the test the README shows: how a test gives the handler
// the secret of a webhook that the fake created.
func TestMyReceiver(t *testing.T) {
	ctx := context.Background()
	cakemail := webhookstest.NewServer()
	defer cakemail.Close()
	client, err := webhooks.NewClient(webhooks.WithBaseURL(cakemail.URL), webhooks.WithAccessToken(cakemail.Token()))
	if err != nil {
		t.Fatal(err)
	}

	// The webhook needs the receiver's URL and the receiver needs the webhook's
	// secret: take the address first, and start serving once the secret is known.
	receiver := httptest.NewUnstartedServer(nil)
	defer receiver.Close()
	url := "http://" + receiver.Listener.Addr().String() + "/webhooks/cakemail"
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	hook, err = client.Get(ctx, hook.ID) // the only call that returns the secret
	if err != nil {
		t.Fatal(err)
	}
	receiver.Config.Handler = newReceiverHandler(hook.Secret) // the handler you ship
	receiver.Start()

	deliveries, err := cakemail.Trigger(ctx, webhooks.EventEmailOpened, map[string]any{"email": "jane@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(deliveries) != 1 || !deliveries[0].OK() {
		t.Fatalf("deliveries = %+v, want one accepted", deliveries)
	}
}
