// Command cakemail-inbox operates a running inbox (github.com/cakemail-go/webhooks/inbox):
// how many deliveries wait, run, retry or are dead; the dead letters, and
// putting them back; running completed deliveries through the handlers again.
//
// It reads the database from DATABASE_URL, sqlite:///path/to/file.db or
// postgres://..., and works beside the running receiver on either. Without
// DATABASE_URL it uses examples/receiver's default, receiver.db in the
// working directory, when that file is there.
//
//	cakemail-inbox status [--subscriber NAME] [--json]
//	cakemail-inbox deadletters list [--type T] [--subscriber NAME] [--since 24h] [--grep TEXT] [--json]
//	cakemail-inbox deadletters retry (ID... | --all) [--type T] [--subscriber NAME] [--since D] [--dry-run] [--json]
//	cakemail-inbox replay --since D [--until D] [--type T] [--subscriber NAME] [--dry-run] [--json]
//
// Exit status: 0 done, 1 failed, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `cakemail-inbox operates a running inbox, on the database DATABASE_URL names
(sqlite:///path/to/file.db or postgres://...), while the receiver runs. Without
DATABASE_URL, it uses receiver.db in the working directory, examples/receiver's
default, when that file is there.

Usage:
  cakemail-inbox status [--subscriber NAME] [--json]
      Deliveries waiting, running, retrying and dead; the oldest waiting; the
      last hour's completed, and how many of them were stale (inbox.WithOrderKey).
  cakemail-inbox deadletters list [--type T] [--subscriber NAME] [--since D] [--grep TEXT] [--json]
      Deliveries whose attempts are exhausted or that cannot be handled as
      sent: id, event type, subscriber, attempts, last error and when.
  cakemail-inbox deadletters retry (ID... | --all) [--type T] [--subscriber NAME] [--since D] [--dry-run] [--json]
      Puts dead letters back in the queue: the running receiver works them again.
  cakemail-inbox replay --since D [--until D] [--type T] [--subscriber NAME] [--dry-run] [--json]
      Runs completed deliveries through the handlers again, after a handler
      bug is fixed. Effects outside the delivery's transaction happen again.
      With --subscriber, that subscriber's only, backfilling one added later.

--subscriber is default (the router given to inbox.Open) or a name given to
inbox.WithSubscriber; each subscriber's deliveries are jobs of their own.

Durations are like 90m, 24h or 7d (before now), or an RFC 3339 time.
Run cakemail-inbox COMMAND -h for a command's flags.
Exit status: 0 done, 1 failed, 2 usage.
`

// env reads the environment; tests pass their own.
type env func(string) string

// cli is one run of the command.
type cli struct {
	stdout, stderr io.Writer
	getenv         env
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) (code int) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(stderr, "cakemail-inbox: internal error: %s\n", redact(fmt.Sprint(v), getenv("DATABASE_URL")))
			code = 1
		}
	}()
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	err := c.dispatch(ctx, args)
	var uerr *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "cakemail-inbox: %s\n", redact(err.Error(), getenv("DATABASE_URL")))
		fmt.Fprintln(stderr, "Run cakemail-inbox -h for usage.")
		return 2
	default:
		fmt.Fprintf(stderr, "cakemail-inbox: %s\n", redact(err.Error(), getenv("DATABASE_URL")))
		return 1
	}
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return &usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usage)
		return nil
	case "status":
		return c.status(ctx, rest)
	case "deadletters", "dead-letters":
		if len(rest) == 0 {
			return usageErrorf("deadletters: want list or retry")
		}
		switch sub := rest[0]; sub {
		case "list", "ls":
			return c.deadLettersList(ctx, rest[1:])
		case "retry":
			return c.deadLettersRetry(ctx, rest[1:])
		case "-h", "-help", "--help", "help":
			fmt.Fprint(c.stdout, "Usage:\n  cakemail-inbox deadletters list [--type T] [--subscriber NAME] [--since D] [--grep TEXT] [--json]\n"+
				"  cakemail-inbox deadletters retry (ID... | --all) [--type T] [--subscriber NAME] [--since D] [--dry-run] [--json]\n")
			return nil
		default:
			return usageErrorf("deadletters: unknown command %q: want list or retry", sub)
		}
	case "replay":
		return c.replay(ctx, rest)
	default:
		return usageErrorf("unknown command %q", cmd)
	}
}

// defaultDatabase is examples/receiver's database when DATABASE_URL is
// unset: receiver.db in the working directory.
const defaultDatabase = "receiver.db"

// open connects to DATABASE_URL, or to the receiver's default database.
func (c *cli) open(ctx context.Context) (store, error) {
	raw := c.getenv("DATABASE_URL")
	if raw == "" {
		if _, err := os.Stat(defaultDatabase); err != nil {
			return nil, usageErrorf("DATABASE_URL is not set, and there is no %s here (examples/receiver's default): "+
				"set DATABASE_URL to sqlite:///path/to/file.db or postgres://...", defaultDatabase)
		}
		fmt.Fprintf(c.stderr, "cakemail-inbox: DATABASE_URL is not set: using %s, examples/receiver's default\n", defaultDatabase)
		raw = "sqlite://" + defaultDatabase
	}
	return openStore(ctx, raw)
}

// flags are a command's flags, and its help.
type flags struct {
	*flag.FlagSet
	help func()
}

// newFlags returns a command's flag set, whose -h prints to stdout.
func (c *cli) newFlags(name, synopsis, about string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // parseFlags says what went wrong, and prints help on -h only
	return &flags{fs, func() {
		fmt.Fprintf(c.stdout, "Usage:\n  cakemail-inbox %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}}
}

// parseFlags parses flags wherever they stand among the positional
// arguments (retry 12 13 --dry-run), and returns the positional ones.
func parseFlags(fs *flags, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, usageErrorf("%s: %s", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// redact removes the database password from a message, should any error
// have quoted the URL.
func redact(msg, rawURL string) string { return sqldb.Redact(msg, rawURL) }
