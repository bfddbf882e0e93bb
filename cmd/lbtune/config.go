package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lbtune/lbtune/tuner/config"
)

func init() {
	register(&command{
		name:    "config",
		summary: "check an lbtune.yaml (config check FILE) or print an example (config example [--sim])",
		run:     configRun,
		subcommands: []subcommand{
			{"check", "validate an lbtune.yaml, every problem with its line: config check FILE"},
			{"example", "print a commented example configuration: config example [--sim] [--haproxy-socket PATH]"},
		},
	})
}

func configRun(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: want 'config check FILE' or 'config example [--sim]'", errUsage)
	}
	switch args[0] {
	case "check":
		fs := newFlagSet("config check", stderr)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: want exactly one FILE", errUsage)
		}
		c, err := config.Load(fs.Arg(0))
		if err != nil {
			// Every problem on its own line, then the one-line summary main prints.
			msgs := configProblems(err)
			for _, m := range msgs {
				fmt.Fprintln(stderr, m)
			}
			return fmt.Errorf("%s: %d problem(s)", fs.Arg(0), len(msgs))
		}
		// What run would refuse or warn about on this host.
		warnings, err := c.Check()
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if err != nil {
			msgs := configProblems(err)
			for _, m := range msgs {
				fmt.Fprintln(stderr, m)
			}
			return fmt.Errorf("%s: %d problem(s)", fs.Arg(0), len(msgs))
		}
		fmt.Fprintf(stdout, "%s: ok (%d pools, %d sources, %d actuators)\n", fs.Arg(0), len(c.Pools), len(c.Sources), len(c.Actuators))
		return nil
	case "example":
		fs := newFlagSet("config example", stderr)
		sim := fs.Bool("sim", false, "simulated pools: runs with no balancer")
		// --sim rehearses the agent, not only its fallback: the shipped
		// model when this is a source tree (make model writes it).
		defModel := ""
		if abs, err := filepath.Abs(filepath.Join("datasets", "default-agent.db")); err == nil {
			if _, err := os.Stat(abs); err == nil {
				defModel = abs
			}
		}
		fs.String("model", defModel, "model + policy store to write in (default with --sim: the shipped datasets/default-agent.db when present)")
		sock := fs.String("haproxy-socket", "", "HAProxy admin socket to write in (e.g. the testbed's: lbtune testbed status --get haproxy.socket)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		model := fs.Lookup("model")
		ex := config.Example(*sim)
		if m := model.Value.String(); m != "" && (*sim || m != defModel) {
			ex = strings.Replace(ex, "  path: \"\"", fmt.Sprintf("  path: %q", m), 1)
		}
		if *sock != "" {
			ex = strings.ReplaceAll(ex, "/run/haproxy/admin.sock", *sock)
		}
		_, err := io.WriteString(stdout, ex)
		return err
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "usage: lbtune config check FILE | lbtune config example [--sim] [--haproxy-socket PATH]")
		return nil
	}
	return fmt.Errorf("%w: unknown config subcommand %q", errUsage, args[0])
}

// configProblems splits a joined validation error into its lines.
func configProblems(err error) []string {
	msg := strings.TrimPrefix(err.Error(), config.ErrInvalid.Error()+": ")
	return strings.Split(msg, "\n")
}
