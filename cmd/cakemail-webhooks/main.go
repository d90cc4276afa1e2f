// Command cakemail-webhooks manages Cakemail webhooks from the shell, with the
// workflows of Cakemail's CLI documentation, built on the Go SDK; with trigger
// and listen it also sends and receives signed deliveries locally, no account
// needed.
//
// Usage:
//
//	cakemail-webhooks [webhooks] <command> [flags] [args]
//
// Run cakemail-webhooks help for the commands, and cakemail-webhooks help
// <command> for one command's flags. Every command takes -f table|json, -v
// (--debug) and -h; flags may come before or after the positional argument.
// The optional leading "webhooks" word lets the lines of Cakemail's CLI
// reference run as written through alias cakemail=cakemail-webhooks.
//
// Credentials come from the environment: CAKEMAIL_ACCESS_TOKEN, or
// CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD; CAKEMAIL_BASE_URL and
// CAKEMAIL_ACCOUNT_ID are optional.
//
// Exit codes: 0 success, 1 API or verification failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cakemail-go/webhooks"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, httpClient: &http.Client{}}
	os.Exit(app.run(ctx, os.Args[1:]))
}

// app holds what the commands read and write, so tests can run them in-process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	clientOptions  []webhooks.Option // added after the environment's
	httpClient     *http.Client      // for deliveries: test, trigger, listen's forwarding
	apiTransport   http.RoundTripper // for API calls; nil means a clone of http.DefaultTransport
	listening      chan<- string     // listen sends its address here once it accepts deliveries

	debug  bool            // -v before the command
	creds  *credentials    // what to mask in text the command did not write
	apiLog *debugTransport // the API client's exchanges, once one is made
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one sub-command.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	help    string // more lines for "help <command>"
	run     func(ctx context.Context, a *app, c *invocation) error
	flags   func(c *invocation)
}

var commands []*command // filled in commands.go's init to keep the table beside the code

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (a *app) run(ctx context.Context, args []string) int {
	a.stderr = &lockedWriter{w: a.stderr}
	a.creds = &credentials{}
	a.knowEnvironmentSecrets()

	// What may precede the command: Cakemail's "webhooks" word and -v.
	for len(args) > 0 {
		switch args[0] {
		case "webhooks":
			args = args[1:]
			continue
		case "-v", "--debug", "-debug":
			a.debug = true
			args = args[1:]
			continue
		}
		break
	}
	if len(args) == 0 {
		fmt.Fprintln(a.stderr, "cakemail-webhooks: no command given; run cakemail-webhooks help for the list")
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		return a.help(args[1:])
	case "--version", "-version":
		args[0] = "version"
	}
	name := args[0]
	cmd := lookupCommand(name)
	if cmd == nil {
		fmt.Fprintf(a.stderr, "cakemail-webhooks: unknown command %q; run cakemail-webhooks help for the list\n", name)
		return exitUsage
	}
	inv, err := parse(cmd, args[1:], a.stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err == nil {
		inv.debug = inv.debug || a.debug
		err = cmd.run(ctx, a, inv)
	}
	return a.report(cmd.name, err)
}

// help prints the list of commands, or one command's usage.
func (a *app) help(args []string) int {
	if len(args) > 0 && args[0] == "webhooks" {
		args = args[1:]
	}
	if len(args) == 0 {
		a.printUsage(a.stdout)
		return exitOK
	}
	cmd := lookupCommand(args[0])
	if cmd == nil {
		fmt.Fprintf(a.stderr, "cakemail-webhooks: help: unknown command %q; run cakemail-webhooks help for the list\n", args[0])
		return exitUsage
	}
	printCommandUsage(a.stdout, newInvocation(cmd))
	return exitOK
}

// report prints err on one line and picks the exit code.
func (a *app) report(name string, err error) int {
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, webhooks.ErrInvalidParams), errors.Is(err, webhooks.ErrUnknownEventType),
		errors.Is(err, webhooks.ErrNoCredentials):
		fmt.Fprintf(a.stderr, "cakemail-webhooks: %s: %s\n", name, message(err))
		return exitUsage
	default:
		msg := message(err)
		if a.apiLog != nil && a.apiLog.w == nil {
			if n, over := a.apiLog.retried(); n > 0 {
				msg += fmt.Sprintf(" (after %d retries over %s; -v shows each exchange)", n, over.Round(100*time.Millisecond))
			}
		}
		fmt.Fprintf(a.stderr, "cakemail-webhooks: %s: %s\n", name, msg)
		return exitFailure
	}
}

// message renders err on one line without the SDK's "webhooks: " prefixes,
// which after "cakemail-webhooks: list: " only repeat the program's name.
func message(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = strings.TrimPrefix(s, "webhooks: ")
	s = strings.ReplaceAll(s, ": webhooks: ", ": ")
	return strings.ReplaceAll(s, " (WithTimeout)", "") // the command sets no timeout of its own
}

// warnf tells the user something worth knowing that does not stop the command.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "warning: "+format+"\n", args...)
}

func (a *app) printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: cakemail-webhooks [webhooks] <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run cakemail-webhooks help <command> for its flags. Every command takes -f table|json,")
	fmt.Fprintln(w, "-v (--debug: one stderr line per HTTP exchange) and -h.")
	fmt.Fprintln(w, "Credentials: CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD;")
	fmt.Fprintln(w, "optional CAKEMAIL_BASE_URL, CAKEMAIL_ACCOUNT_ID. trigger, listen, verify, events and version need none.")
	fmt.Fprintln(w, "Webhooks cannot be deleted through the API: delete archives them, unarchive brings them back.")
}

// credentialError is a missing or half-set login, in the words of the environment.
type credentialError struct{ msg string }

func (e *credentialError) Error() string { return e.msg }
func (e *credentialError) Unwrap() error { return webhooks.ErrNoCredentials }

// knowEnvironmentSecrets records the credentials of the environment, and a
// password inside CAKEMAIL_BASE_URL, so that no echo of them is printed.
func (a *app) knowEnvironmentSecrets() {
	a.creds.add(os.Getenv("CAKEMAIL_ACCESS_TOKEN"), os.Getenv("CAKEMAIL_PASSWORD"))
	a.creds.addURLPassword(os.Getenv("CAKEMAIL_BASE_URL"))
}

// shownURL is rawURL fit for a message: its password, if any, masked.
func shownURL(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && (u.User != nil || !strings.Contains(rawURL, "@")) {
		return u.Redacted()
	}
	if strings.Contains(rawURL, "@") {
		return "(not shown: it may hold a password)"
	}
	return rawURL
}

// client builds the API client from the environment, checking each variable
// itself so that a mistake is reported by the variable's name.
func (a *app) client(c *invocation) (*webhooks.Client, error) {
	var opts []webhooks.Option
	if raw := os.Getenv("CAKEMAIL_BASE_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, usagef("CAKEMAIL_BASE_URL=%s is not an http or https URL without a query; set it like %s", shownURL(raw), webhooks.DefaultBaseURL)
		}
		if u.User != nil {
			return nil, usagef("CAKEMAIL_BASE_URL=%s holds a user name: leave it out, and give the API's credentials in CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD", u.Redacted())
		}
		opts = append(opts, webhooks.WithBaseURL(raw))
	}
	if raw := os.Getenv("CAKEMAIL_ACCOUNT_ID"); raw != "" {
		id, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || id < 1 {
			return nil, usagef("CAKEMAIL_ACCOUNT_ID=%q is not an account id (a whole number from 1)", raw)
		}
		opts = append(opts, webhooks.WithAccountID(id))
	}
	token, user, pass := os.Getenv("CAKEMAIL_ACCESS_TOKEN"), os.Getenv("CAKEMAIL_USERNAME"), os.Getenv("CAKEMAIL_PASSWORD")
	switch {
	case strings.TrimSpace(token) != "":
		opts = append(opts, webhooks.WithAccessToken(token))
	case user != "" && pass != "":
		opts = append(opts, webhooks.WithCredentials(user, pass))
	case user != "":
		return nil, &credentialError{"CAKEMAIL_USERNAME is set but CAKEMAIL_PASSWORD is not. Set CAKEMAIL_PASSWORD too, or set CAKEMAIL_ACCESS_TOKEN instead."}
	case pass != "":
		return nil, &credentialError{"CAKEMAIL_PASSWORD is set but CAKEMAIL_USERNAME is not. Set CAKEMAIL_USERNAME too, or set CAKEMAIL_ACCESS_TOKEN instead."}
	default:
		return nil, &credentialError{"no credentials. Set CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD."}
	}
	a.creds.addURLPassword(c.url)
	transport := a.apiTransport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	// The API's error answers are the one place the server may echo what it
	// was sent: the password of a login form, a token, a webhook URL's password.
	transport = &echoMaskingTransport{next: transport, creds: a.creds}
	var log io.Writer
	if c.debug {
		log = a.stderr
	}
	a.apiLog = newDebugTransport(transport, log)
	transport = a.apiLog
	opts = append(opts, webhooks.WithHTTPClient(&http.Client{Transport: transport}))
	client, err := webhooks.NewClient(append(opts, a.clientOptions...)...)
	if err != nil && strings.Contains(err.Error(), "WithBaseURL") {
		// A check of the SDK's that the command does not repeat: say it in the user's terms.
		msg := strings.TrimPrefix(message(err), "invalid parameters: ")
		return nil, usagef("%s", sdkBaseURL.ReplaceAllString(msg, "CAKEMAIL_BASE_URL"))
	}
	return client, err
}

// sdkBaseURL is how the SDK names the option CAKEMAIL_BASE_URL feeds.
var sdkBaseURL = regexp.MustCompile(`WithBaseURL(\("[^"]*"\))?`)

// deliveryClient is the HTTP client for deliveries, logging them under -v. It
// never follows a redirect: that would send the signed body, and its
// signature, to an address the user never gave. The 3xx is the answer.
func (a *app) deliveryClient(c *invocation) *http.Client {
	hc := *a.httpClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.debug {
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		hc.Transport = newDebugTransport(next, a.stderr)
	}
	return &hc
}

// deliveryTimeout bounds one delivery the command sends; Cakemail itself gives 5 s.
const deliveryTimeout = 10 * time.Second

func runVersion(_ context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(a.stdout, map[string]string{"version": webhooks.Version, "go": runtime.Version()})
	}
	_, err := fmt.Fprintf(a.stdout, "cakemail-webhooks %s (github.com/cakemail-go/webhooks %s, %s)\n", webhooks.Version, webhooks.Version, runtime.Version())
	return err
}

// lockedWriter keeps the writes of concurrent handlers (listen's) whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
