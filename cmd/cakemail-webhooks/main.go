// Command cakemail-webhooks manages Cakemail webhooks from the shell, with the
// workflows of Cakemail's CLI documentation, built on the Go SDK.
//
// Usage:
//
//	cakemail-webhooks <command> [flags] [args]
//
// Commands: list, get, create, update, archive, unarchive, test, verify, events.
// Every command takes -f table|json and -h. Flags may come before or after the
// positional argument.
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
	"os"
	"os/signal"
	"strings"
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
	app := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, httpClient: http.DefaultClient}
	os.Exit(app.run(ctx, os.Args[1:]))
}

// app holds what the commands read and write, so tests can run them in-process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	clientOptions  []webhooks.Option // added after the environment's
	httpClient     *http.Client      // for the test command's delivery
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
	run     func(ctx context.Context, a *app, c *invocation) error
	flags   func(c *invocation)
}

var commands []*command // filled in commands.go's init to keep the table beside the code

func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(a.stderr, "cakemail-webhooks: no command given; run cakemail-webhooks -h for the list")
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		a.printUsage(a.stdout)
		return exitOK
	}
	name := args[0]
	if name == "delete" {
		fmt.Fprintln(a.stderr, "cakemail-webhooks: delete: the Cakemail API cannot delete webhooks; archive it instead: cakemail-webhooks archive <id> (unarchive brings it back)")
		return exitUsage
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(a.stderr, "cakemail-webhooks: unknown command %q; run cakemail-webhooks -h for the list\n", name)
		return exitUsage
	}
	inv, err := parse(cmd, args[1:], a.stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err == nil {
		err = cmd.run(ctx, a, inv)
	}
	return a.report(cmd.name, err)
}

// report prints err on one line and picks the exit code.
func (a *app) report(name string, err error) int {
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, webhooks.ErrInvalidParams), errors.Is(err, webhooks.ErrUnknownEventType),
		errors.Is(err, webhooks.ErrNoCredentials):
		fmt.Fprintf(a.stderr, "cakemail-webhooks: %s: %s\n", name, oneLine(err))
		return exitUsage
	default:
		fmt.Fprintf(a.stderr, "cakemail-webhooks: %s: %s\n", name, oneLine(err))
		return exitFailure
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (a *app) printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: cakemail-webhooks <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes -f table|json and -h. Credentials: CAKEMAIL_ACCESS_TOKEN, or")
	fmt.Fprintln(w, "CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD; optional CAKEMAIL_BASE_URL, CAKEMAIL_ACCOUNT_ID.")
	fmt.Fprintln(w, "Webhooks cannot be deleted through the API: archive them.")
}

func (a *app) client() (*webhooks.Client, error) {
	client, err := webhooks.NewClientFromEnv(a.clientOptions...)
	if errors.Is(err, webhooks.ErrNoCredentials) {
		return nil, fmt.Errorf("%w (set CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD)", err)
	}
	return client, err
}

// deliveryTimeout bounds the test command's request; Cakemail itself gives 5 s.
const deliveryTimeout = 10 * time.Second
