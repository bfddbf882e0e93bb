// Command lbtune is a learning-based load-balancer tuner: it records a
// balancer's statistics, learns load states and a scaling/weighting policy,
// and applies that policy to NGINX, HAProxy, local processes or AWS.
//
// Each subcommand lives in its own file (flags, output, exit codes) and
// registers itself in init; `lbtune run` hands its configuration to package
// tuner, the online runtime.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// command is one lbtune subcommand.
type command struct {
	// name is the first argument selecting the command (e.g. "record", "dataset").
	name string
	// summary is the one-line description shown by "lbtune help".
	summary string
	// run executes the command with the arguments after its name. Output goes
	// to stdout/stderr; a returned error is printed as one line and the
	// process exits 1. Return errUsage (wrapped or not) for flag errors.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// subcommands, when set, make the command a group: `lbtune NAME`,
	// `lbtune NAME -h` and `lbtune help NAME` list them (main handles
	// these before run).
	subcommands []subcommand
}

// subcommand is one entry of a group command's help.
type subcommand struct {
	// name is the word after the command (e.g. "check").
	name string
	// summary says what it does, on one line.
	summary string
}

// isHelpArg reports whether a is -h, --help or help.
func isHelpArg(a string) bool { return a == "-h" || a == "--help" || a == "help" }

// groupUsage lists a group command's subcommands, one line each.
func groupUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: lbtune %s <subcommand> [flags]\n\nSubcommands:\n", c.name)
	width := 0
	for _, s := range c.subcommands {
		width = max(width, len(s.name))
	}
	for _, s := range c.subcommands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun 'lbtune %s <subcommand> -h' for its flags.\n", c.name)
}

// exitNeedsOperator is the exit status of `lbtune run` when retrying cannot
// help (a damaged store): docs/lbtune.service lists it in
// RestartPreventExitStatus so systemd stops restarting and an operator
// recovers the store (docs/OPERATIONS.md "Damaged store").
const exitNeedsOperator = 3

// exitCode gives an error its own exit status.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string { return e.err.Error() }
func (e exitCode) Unwrap() error { return e.err }

// errUsage marks a command-line mistake; main exits 2 on it.
var errUsage = errors.New("usage error")

var commands = map[string]*command{}

// register adds c to the command table; called from init in each command file.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("lbtune: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain dispatches args to a subcommand and returns the exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		// No command is a usage error: the list goes to stderr, exit 2.
		usage(stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "lbtune: unknown command %q (run 'lbtune help')\n", args[1])
				return 2
			}
			if c.subcommands != nil {
				groupUsage(stdout, c)
				return 0
			}
			_ = c.run(ctx, []string{"-h"}, stdout, stderr)
			return 0
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "lbtune: unknown command %q (run 'lbtune help')\n", args[0])
		return 2
	}
	if c.subcommands != nil {
		switch {
		case len(args) == 1:
			groupUsage(stderr, c)
			fmt.Fprintf(stderr, "lbtune %s: %v: missing subcommand\n", c.name, errUsage)
			return 2
		case isHelpArg(args[1]):
			groupUsage(stdout, c)
			return 0
		}
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "lbtune %s: %s\n", c.name, oneLine(err))
		if errors.Is(err, errUsage) {
			return 2
		}
		if ec := (exitCode{}); errors.As(err, &ec) {
			return ec.code
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "lbtune: a learning-based load-balancer tuner")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: lbtune <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'lbtune <command> -h' for the flags of one command.")
}

// oneLine flattens an error message to a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// newFlagSet returns a FlagSet for a subcommand that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lbtune "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs, wrapping failures in errUsage. Flags may
// come before, between or after positional arguments (`lbtune mode manual
// --pool web` and `lbtune mode --pool web manual` mean the same); "--" ends
// the flags, and a negative number ("-1") is a positional argument, so
// `lbtune scale web -1` works. After it returns, fs.Args() holds the
// positional arguments in their order.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if !isFlagArg(a) {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		// One flag: -name=value, a boolean -name, or -name value.
		n := 1
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && len(args) > 1 {
			if f := fs.Lookup(name); f != nil {
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
					n = 2
				}
			}
		}
		if err := fs.Parse(args[:n]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		args = args[n:]
	}
	// Leave the positional arguments as fs.Args().
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// isFlagArg reports whether a command-line argument is a flag: it starts
// with "-", is not "-" alone and is not a number (a -1 delta).
func isFlagArg(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}
