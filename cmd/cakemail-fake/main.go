// Command cakemail-fake serves webhookstest's in-memory Cakemail over HTTP, so
// that clients in any language can be tested without a Cakemail account:
//
//	go run ./cmd/cakemail-fake -addr 127.0.0.1:8025 -user dev@example.com -password secret
//
// It speaks the webhooks and token API as Cakemail's OpenAPI description has
// it, plus one test-only route: POST /_fake/trigger with
// {"event": "Email.Opened", "data": {...}, "account_id": 1} signs and delivers
// the event to the matching webhooks and answers with the list of deliveries.
// It logs one line per API request and per delivery to stderr (-quiet silences
// them), never a header value, token, password or signing secret. SIGINT or
// SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/cakemail-go/webhooks/webhookstest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until ctx is done; ready, when not nil, receives the server once it listens.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready ...chan<- *webhookstest.Server) int {
	fs := flag.NewFlagSet("cakemail-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8025", "address to listen on")
	username := fs.String("user", webhookstest.DefaultUsername, "username (email) of the user to create")
	password := fs.String("password", webhookstest.DefaultPassword, "that user's password")
	tokenLifetime := fs.Duration("token-lifetime", time.Hour, "how long access tokens live")
	quiet := fs.Bool("quiet", false, "do not log each API request and delivery to stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cakemail-fake: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *username == "" || *password == "" || *tokenLifetime <= 0 {
		fmt.Fprintln(stderr, "cakemail-fake: -user and -password must not be empty, -token-lifetime must be positive")
		return 2
	}
	opts := []webhookstest.ServerOption{webhookstest.WithTokenLifetime(*tokenLifetime)}
	if !*quiet {
		opts = append(opts, webhookstest.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: compactLog}))))
	}
	srv, err := webhookstest.Listen(*addr, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "cakemail-fake: %v\n", err)
		return 1
	}
	defer srv.Close()
	// Every user that can log in is named, the built-in one included: a user who
	// finds it working should not wonder where it came from.
	fmt.Fprintf(stdout, "Fake Cakemail API listening at %s\n", srv.URL)
	fmt.Fprintln(stdout, "  users that can log in (POST /token, grant_type=password):")
	if *username != webhookstest.DefaultUsername || *password != webhookstest.DefaultPassword {
		accountID := srv.AddUser(*username, *password)
		fmt.Fprintf(stdout, "    user: %s  password: %s  account id: %d\n", *username, *password, accountID)
	}
	if *username != webhookstest.DefaultUsername {
		fmt.Fprintf(stdout, "    user: %s  password: %s  account id: %d  (built in: this local fake's well-known credential, never a real one)\n",
			webhookstest.DefaultUsername, webhookstest.DefaultPassword, webhookstest.DefaultAccountID)
	} else if *password == webhookstest.DefaultPassword {
		fmt.Fprintf(stdout, "    user: %s  password: %s  account id: %d  (built in: this local fake's well-known credential; set your own with -user and -password)\n",
			webhookstest.DefaultUsername, webhookstest.DefaultPassword, webhookstest.DefaultAccountID)
	}
	if *quiet {
		fmt.Fprintln(stdout, "  requests and deliveries are not logged (-quiet)")
	} else {
		fmt.Fprintln(stdout, "  logging one line per API request and per delivery to stderr (-quiet to silence)")
	}
	fmt.Fprintf(stdout, "  trigger deliveries: POST %s/_fake/trigger {\"event\": \"Email.Opened\", \"data\": {}}\n", srv.URL)
	fmt.Fprintln(stdout, "Point cakemail-webhooks at it with:")
	fmt.Fprintln(stdout, exportLine(srv.URL, *username, *password))
	for _, name := range []string{"CAKEMAIL_ACCESS_TOKEN", "CAKEMAIL_ACCOUNT_ID"} {
		if os.Getenv(name) != "" {
			fmt.Fprintf(stdout, "  and unset %s, set in this shell: cakemail-webhooks would use it instead\n", name)
		}
	}
	for _, ch := range ready {
		ch <- srv
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping.")
	return 0
}

// exportLine is the shell line that points cakemail-webhooks at the fake.
func exportLine(baseURL, username, password string) string {
	return "export CAKEMAIL_BASE_URL=" + shellQuote(baseURL) + " CAKEMAIL_USERNAME=" + shellQuote(username) +
		" CAKEMAIL_PASSWORD=" + shellQuote(password)
}

// plainShellWord is what a shell reads as one word, unchanged, without quotes.
var plainShellWord = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shellQuote makes s one shell word that reads back as s.
func shellQuote(s string) string {
	if plainShellWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// compactLog drops the level, always info, and keeps the time of day only.
func compactLog(groups []string, a slog.Attr) slog.Attr {
	switch {
	case len(groups) > 0:
	case a.Key == slog.LevelKey:
		return slog.Attr{}
	case a.Key == slog.TimeKey:
		return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
	}
	return a
}
