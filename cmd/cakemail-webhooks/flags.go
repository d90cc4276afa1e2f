package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp means -h was given and usage was printed.
var errHelp = errors.New("help requested")

// invocation is one command's parsed command line.
type invocation struct {
	fs      *flag.FlagSet
	format  string
	args    []string        // positional arguments
	set     map[string]bool // flags given, by long name
	aliases []flagAlias     // for the usage text

	limit, page, rateLimit                int
	archived                              bool
	url, events, period, event, signature string
	name, secret                          string
}

type flagAlias struct{ short, long string }

// stringFlag registers -short and --long for one value; short may be empty.
func (c *invocation) stringFlag(p *string, short, long, value, usage string) {
	if short != "" {
		c.fs.StringVar(p, short, value, usage)
	}
	c.fs.StringVar(p, long, value, usage)
	c.aliases = append(c.aliases, flagAlias{short, long})
}

func (c *invocation) intFlag(p *int, short, long string, value int, usage string) {
	if short != "" {
		c.fs.IntVar(p, short, value, usage)
	}
	c.fs.IntVar(p, long, value, usage)
	c.aliases = append(c.aliases, flagAlias{short, long})
}

func (c *invocation) boolFlag(p *bool, long, usage string) {
	c.fs.BoolVar(p, long, false, usage)
	c.aliases = append(c.aliases, flagAlias{"", long})
}

// parse reads flags wherever they stand among the positional arguments, as
// Cakemail's CLI documentation writes them ("get 301 -f json"); Go's flag
// package alone stops at the first positional argument. "--" ends the flags.
func parse(cmd *command, args []string, stdout io.Writer) (*invocation, error) {
	c := &invocation{fs: flag.NewFlagSet(cmd.name, flag.ContinueOnError), set: map[string]bool{}}
	c.fs.SetOutput(io.Discard)
	c.stringFlag(&c.format, "f", "format", "table", "output format: table or json")
	if cmd.flags != nil {
		cmd.flags(c)
	}
	rest := args
	for {
		if err := c.fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandUsage(stdout, cmd, c)
				return nil, errHelp
			}
			return nil, usagef("%v (see cakemail-webhooks %s -h)", err, cmd.name)
		}
		remaining := c.fs.Args()
		consumed := len(rest) - len(remaining)
		if consumed > 0 && rest[consumed-1] == "--" {
			c.args = append(c.args, remaining...)
			break
		}
		if len(remaining) == 0 {
			break
		}
		c.args = append(c.args, remaining[0])
		rest = remaining[1:]
	}
	c.fs.Visit(func(f *flag.Flag) { c.set[c.longName(f.Name)] = true })
	if c.format != "table" && c.format != "json" {
		return nil, usagef("-f must be table or json, not %q", c.format)
	}
	return c, nil
}

func (c *invocation) longName(name string) string {
	for _, a := range c.aliases {
		if a.short == name {
			return a.long
		}
	}
	return name
}

// oneArg returns the single positional argument called what.
func (c *invocation) oneArg(what string) (string, error) {
	if len(c.args) != 1 || strings.TrimSpace(c.args[0]) == "" {
		return "", usagef("want exactly one %s argument, got %d", what, len(c.args))
	}
	return c.args[0], nil
}

func (c *invocation) noArgs() error {
	if len(c.args) != 0 {
		return usagef("unexpected argument %q", c.args[0])
	}
	return nil
}

func printCommandUsage(w io.Writer, cmd *command, c *invocation) {
	fmt.Fprintf(w, "Usage: cakemail-webhooks %s [flags] %s\n\n%s\n\nFlags:\n", cmd.name, cmd.args, cmd.summary)
	for _, a := range c.aliases {
		f := c.fs.Lookup(a.long)
		names := "--" + a.long
		if a.short != "" {
			names = "-" + a.short + ", " + names
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  %-22s %s%s\n", names, f.Usage, def)
	}
}
