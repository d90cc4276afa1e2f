package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errHelp means -h was given and usage was printed.
var errHelp = errors.New("help requested")

// invocation is one command's parsed command line.
type invocation struct {
	cmd   *command
	defs  []*flagDef
	args  []string          // positional arguments
	typed map[string]string // flags given: long name -> the spelling typed, such as "-s"

	format string
	debug  bool

	limit, page, rateLimit                                   int
	archived, prune, dryRun, env, archiveOld, hex, force     bool
	url, period, event, signature, name, secret, data, shape string
	addr, forwardTo                                          string
	events                                                   []string // every -e, in order
	explain                                                  bool     // verify --explain
}

type flagKind int

const (
	kindString flagKind = iota
	kindInt
	kindBool
	kindList // repeatable; every value is kept
)

// flagDef is one flag a command takes.
type flagDef struct {
	short, long string
	kind        flagKind
	def         string // shown in help when not empty
	usage       string
	str         *string
	num         *int
	flag        *bool
	list        *[]string
}

func (c *invocation) add(d *flagDef) { c.defs = append(c.defs, d) }

func (c *invocation) stringFlag(p *string, short, long, def, usage string) {
	*p = def
	c.add(&flagDef{short: short, long: long, kind: kindString, def: def, usage: usage, str: p})
}

func (c *invocation) intFlag(p *int, short, long string, usage string) {
	c.add(&flagDef{short: short, long: long, kind: kindInt, usage: usage, num: p})
}

func (c *invocation) boolFlag(p *bool, short, long, usage string) {
	c.add(&flagDef{short: short, long: long, kind: kindBool, usage: usage, flag: p})
}

func (c *invocation) listFlag(p *[]string, short, long, usage string) {
	c.add(&flagDef{short: short, long: long, kind: kindList, usage: usage, list: p})
}

func (c *invocation) lookup(name string) *flagDef {
	for _, d := range c.defs {
		if d.long == name || (d.short != "" && d.short == name) {
			return d
		}
	}
	return nil
}

// given reports whether the flag with this long name was on the command line.
func (c *invocation) given(long string) bool {
	_, ok := c.typed[long]
	return ok
}

// spelled returns the flag as the user typed it ("-s" or "--secret"), for messages.
func (c *invocation) spelled(long string) string {
	if s, ok := c.typed[long]; ok {
		return s
	}
	return "--" + long
}

// newInvocation registers the flags every command takes, then cmd's own.
func newInvocation(cmd *command) *invocation {
	c := &invocation{cmd: cmd, typed: map[string]string{}}
	c.stringFlag(&c.format, "f", "format", "table", "output format: table or json")
	c.boolFlag(&c.debug, "v", "debug", "print one line per HTTP exchange on stderr")
	if cmd.flags != nil {
		cmd.flags(c)
	}
	return c
}

// parse reads flags wherever they stand among the positional arguments, as
// Cakemail's CLI documentation writes them ("get 301 -f json"). "--" ends the
// flags. Every unknown flag is reported at once, so one correction is enough.
func parse(cmd *command, args []string, stdout io.Writer) (*invocation, error) {
	c := newInvocation(cmd)
	var unknown []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			c.args = append(c.args, args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			c.args = append(c.args, arg)
			continue
		}
		dashes := "-"
		name := arg[1:]
		if strings.HasPrefix(name, "-") {
			dashes, name = "--", name[1:]
		}
		name, value, hasValue := strings.Cut(name, "=")
		if name == "h" || name == "help" {
			printCommandUsage(stdout, c)
			return nil, errHelp
		}
		d := c.lookup(name)
		if d == nil || name == "" {
			unknown = append(unknown, dashes+name)
			continue
		}
		typed := dashes + name
		if d.kind == kindBool {
			on := true
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return nil, usagef("%s takes no value, or true or false; not %q", typed, value)
				}
				on = b
			}
			*d.flag = on
			c.typed[d.long] = typed
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("%s needs a value (see cakemail-webhooks %s -h)", typed, cmd.name)
			}
			i++
			value = args[i]
		}
		switch d.kind {
		case kindString:
			*d.str = value
		case kindList:
			*d.list = append(*d.list, value)
		case kindInt:
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				return nil, usagef("%s wants a whole number, not %q", typed, value)
			}
			*d.num = n
		}
		c.typed[d.long] = typed
	}
	if len(unknown) > 0 {
		noun := "flag"
		if len(unknown) > 1 {
			noun = "flags"
		}
		return nil, usagef("unknown %s %s (see cakemail-webhooks %s -h)", noun, strings.Join(unknown, ", "), cmd.name)
	}
	format := strings.ToLower(strings.TrimSpace(c.format))
	if format != "table" && format != "json" {
		return nil, usagef("%s must be table or json, not %q", c.spelled("format"), c.format)
	}
	c.format = format
	return c, nil
}

// oneArg returns the single positional argument called what.
func (c *invocation) oneArg(what string) (string, error) {
	if len(c.args) != 1 || strings.TrimSpace(c.args[0]) == "" {
		return "", usagef("want exactly one %s argument, got %d (usage: cakemail-webhooks %s %s)", what, len(c.args), c.cmd.name, c.cmd.args)
	}
	return c.args[0], nil
}

func (c *invocation) noArgs() error {
	if len(c.args) != 0 {
		return usagef("unexpected argument %q", c.args[0])
	}
	return nil
}

// metavar names a flag's value in help: what to type, not the flag again.
func metavar(long string) string {
	switch long {
	case "url", "forward-to":
		return "URL"
	case "addr":
		return "HOST:PORT"
	case "data":
		return "JSON"
	case "format":
		return "table|json"
	case "shape":
		return "api|guide"
	case "period":
		return "second|minute"
	}
	return strings.ToUpper(long)
}

func printCommandUsage(w io.Writer, c *invocation) {
	cmd := c.cmd
	usage := "cakemail-webhooks " + cmd.name + " [flags]"
	if cmd.args != "" {
		usage += " " + cmd.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usage, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fmt.Fprintln(w, "\nFlags:")
	for _, d := range c.defs {
		names := "--" + d.long
		if d.short != "" {
			names = "-" + d.short + ", " + names
		}
		switch d.kind {
		case kindString, kindList:
			names += " " + metavar(d.long)
		case kindInt:
			names += " N"
		}
		def := ""
		if d.def != "" {
			def = fmt.Sprintf(" (default %s)", d.def)
		}
		fmt.Fprintf(w, "  %-26s %s%s\n", names, d.usage, def)
	}
}
