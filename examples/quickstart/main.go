// Command quickstart walks through the SDK end to end: it manages a webhook on
// the Cakemail API and receives a signed delivery.
//
// With no credentials in the environment it runs against webhookstest, an
// in-memory Cakemail, so it needs no account:
//
//	go run ./examples/quickstart
//
// With CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD, set it
// talks to the real API and only lists the account's webhooks; add -write and
// -url https://your.receiver/path to also create, update and archive one there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func main() {
	write := flag.Bool("write", false, "against the real API: also create, update and archive a webhook")
	url := flag.String("url", "", "against the real API with -write: the https URL of the webhook to create")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if hasCredentials(os.Getenv) {
		err = runReal(ctx, os.Stdout, *write, *url)
	} else {
		err = runFake(ctx, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func hasCredentials(getenv func(string) string) bool {
	return getenv("CAKEMAIL_ACCESS_TOKEN") != "" || (getenv("CAKEMAIL_USERNAME") != "" && getenv("CAKEMAIL_PASSWORD") != "")
}

// received is what the receiver tells the main flow about each verified delivery.
type received struct {
	event *webhooks.Event
	email string
}

// runFake is the whole flow against the in-memory Cakemail.
func runFake(ctx context.Context, out io.Writer) error {
	fake := webhookstest.NewServer()
	defer fake.Close()
	say(out, "1. Started an in-memory Cakemail at %s", fake.URL)

	client, err := webhooks.NewClient(
		webhooks.WithBaseURL(fake.URL),
		webhooks.WithCredentials(webhookstest.DefaultUsername, webhookstest.DefaultPassword),
	)
	if err != nil {
		return err
	}

	// The receiver's address must exist before the webhook points at it; its
	// verifier needs the secret, which only exists once the webhook does.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	receiverURL := "http://" + listener.Addr().String() + "/webhooks/cakemail"

	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: receiverURL})
	if err != nil {
		listener.Close()
		return err
	}
	say(out, "2. Created webhook %s for %s -> %s", hook.ID, hook.Event, hook.URL)

	hook, err = client.Get(ctx, hook.ID)
	if err != nil {
		listener.Close()
		return err
	}
	say(out, "3. Fetched its signing secret with Get (%d characters, hash %s)", len(hook.Secret), hook.HashFunction)

	verifier, err := webhooks.NewVerifier([]string{hook.Secret})
	if err != nil {
		listener.Close()
		return err
	}
	deliveries := make(chan received, 4)
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := webhooks.EventFromContext(r.Context())
		var data webhooks.EmailData
		if err := event.DecodeData(&data); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		deliveries <- received{event: event, email: data.Email}
	})))
	receiver := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go receiver.Serve(listener)
	defer receiver.Close()
	say(out, "4. Receiver listening at %s behind Verifier.Middleware", receiverURL)

	sent, err := fake.Trigger(ctx, webhooks.EventEmailOpened, map[string]any{"email": "jane@example.com", "campaign_id": 42})
	if err != nil {
		return err
	}
	if len(sent) != 1 {
		return fmt.Errorf("expected one delivery, got %d", len(sent))
	}
	select {
	case got := <-deliveries:
		say(out, "5. Cakemail delivered %s (HTTP %d); the receiver verified it: %s opened an email in account %d",
			got.event.Type, sent[0].StatusCode, got.email, got.event.AccountID)
	case <-time.After(5 * time.Second):
		return errors.New("the receiver got nothing")
	}

	hook, err = client.Update(ctx, hook.ID, &webhooks.UpdateParams{RateLimit: webhooks.Ptr(10), RateLimitPeriod: webhooks.Ptr(webhooks.PerMinute)})
	if err != nil {
		return err
	}
	say(out, "6. Updated the rate limit to %d per %s", hook.RateLimit, hook.RateLimitPeriod)

	hook, err = client.Archive(ctx, hook.ID)
	if err != nil {
		return err
	}
	sent, err = fake.Trigger(ctx, webhooks.EventEmailOpened, map[string]any{"email": "john@example.com"})
	if err != nil {
		return err
	}
	say(out, "7. Archived the webhook (status %s); a second event made %d deliveries", hook.Status, len(sent))

	say(out, "8. Webhooks in the account, archived ones included:")
	for h, err := range client.All(ctx, &webhooks.ListOptions{WithArchived: true}) {
		if err != nil {
			return err
		}
		say(out, "   %s  %-12s  %-8s  %s", h.ID, h.Event, h.Status, h.URL)
	}
	say(out, "Done.")
	return nil
}

// runReal lists the account's webhooks on the real API, and with write also
// creates, updates and archives one.
func runReal(ctx context.Context, out io.Writer, write bool, url string) error {
	client, err := webhooks.NewClientFromEnv()
	if err != nil {
		return err
	}
	say(out, "Webhooks in your Cakemail account, archived ones included:")
	n := 0
	for h, err := range client.All(ctx, &webhooks.ListOptions{WithArchived: true}) {
		if err != nil {
			return err
		}
		n++
		say(out, "   %s  %-22s  %-8s  %s", h.ID, h.Event, h.Status, h.URL)
	}
	say(out, "%d webhook(s).", n)
	if !write {
		say(out, "Read-only run: pass -write -url https://... to create, update and archive a webhook.")
		return nil
	}
	if url == "" {
		return errors.New("-write needs -url, the https address of a receiver")
	}
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: url})
	if err != nil {
		return err
	}
	say(out, "Created webhook %s for %s -> %s", hook.ID, hook.Event, hook.URL)
	if hook, err = client.Get(ctx, hook.ID); err != nil {
		return err
	}
	say(out, "Its signing secret is available through Get (%d characters; not printed)", len(hook.Secret))
	if hook, err = client.Update(ctx, hook.ID, &webhooks.UpdateParams{RateLimit: webhooks.Ptr(10)}); err != nil {
		return err
	}
	say(out, "Updated the rate limit to %d per %s", hook.RateLimit, hook.RateLimitPeriod)
	if hook, err = client.Archive(ctx, hook.ID); err != nil {
		return err
	}
	say(out, "Archived webhook %s (webhooks cannot be deleted; unarchive brings it back)", hook.ID)
	return nil
}

func say(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, format+"\n", args...)
}
