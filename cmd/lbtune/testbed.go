package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lbtune/lbtune/testbed"
)

func init() {
	register(&command{
		name:    "testbed",
		summary: "start/stop a local HAProxy + NGINX cluster of job backends (up|down|status|explore|example)",
		run:     testbedRun,
		subcommands: []subcommand{
			{"up", "start HAProxy, NGINX and the job backends (state in --dir)"},
			{"down", "stop everything a testbed started"},
			{"status", "print the testbed's addresses and sources (--get KEY for one value)"},
			{"explore", "change a running testbed's weights at random, logging each change as a dataset event"},
			{"example", "print the default testbed YAML"},
		},
	})
}

func testbedRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			testbedUsage(stderr)
			return nil
		}
		return fmt.Errorf("%w: want a subcommand: up, down, status, explore or example", errUsage)
	}
	sub := args[0]
	if sub == "explore" {
		return testbedExploreFlags(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("testbed "+sub, stderr)
	cfgPath := fs.String("config", "", "testbed YAML config (default: built in; see 'lbtune testbed example')")
	dir := fs.String("dir", "", "state directory (overrides the config's state_dir)")
	asJSON := fs.Bool("json", false, "print the state as JSON")
	get := fs.String("get", "", "status: print one value for scripts: dir, haproxy.addr, haproxy.source, haproxy.log,\nhaproxy.log_source, nginx.addr, nginx.source")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg := testbed.DefaultConfig()
	if *cfgPath != "" {
		var err error
		if cfg, err = testbed.LoadConfig(*cfgPath); err != nil {
			return err
		}
	}
	if *dir != "" {
		cfg.StateDir = *dir
	}
	switch sub {
	case "example":
		fmt.Fprint(stdout, testbed.Example())
		return nil
	case "up":
		st, err := testbed.Up(ctx, cfg, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			return err
		}
		return testbedPrint(stdout, st, *asJSON)
	case "down":
		st, err := testbed.Down(ctx, cfg.StateDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "testbed in %s stopped: %d processes, none left running\n", st.Dir, len(st.Processes()))
		return nil
	case "status":
		st, err := testbed.LoadState(cfg.StateDir)
		if err != nil {
			return err
		}
		if *get != "" {
			v, err := testbedGet(st, *get)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, v)
			return nil
		}
		if err := testbedPrint(stdout, st, *asJSON); err != nil {
			return err
		}
		for _, p := range st.Processes() {
			if !p.Alive {
				return errors.New("some testbed processes are not running")
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown subcommand %q (want up, down, status, explore or example)", errUsage, sub)
}

// testbedGet returns one value of the state by name, for scripts.
func testbedGet(st *testbed.State, name string) (string, error) {
	h, n := st.HAProxy, st.NGINX
	switch {
	case name == "dir":
		return st.Dir, nil
	case name == "haproxy.addr" && h != nil:
		return h.Addr, nil
	case name == "haproxy.source" && h != nil:
		return h.Source, nil
	case name == "haproxy.socket" && h != nil:
		return h.Socket, nil
	case name == "haproxy.log" && h != nil:
		return h.Log, nil
	case name == "haproxy.log_source" && h != nil && h.LogSource != "":
		return h.LogSource, nil
	case name == "nginx.addr" && n != nil:
		return n.Addr, nil
	case name == "nginx.source" && n != nil:
		return n.Source, nil
	}
	return "", fmt.Errorf("%w: --get %q: unknown name or balancer not running", errUsage, name)
}

func testbedUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: lbtune testbed up|down|status|example [--config testbed.yaml] [--dir STATE_DIR] [--json]")
	fmt.Fprintln(w, "       lbtune testbed explore --dir STATE_DIR --balancer haproxy|nginx --duration D [--every 20s] [--events FILE]")
}

func testbedPrint(w io.Writer, st *testbed.State, asJSON bool) error {
	procs := st.Processes()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*testbed.State
			Processes []testbed.Process `json:"processes"`
			Sources   []string          `json:"sources"`
		}{st, procs, st.Sources()})
	}
	fmt.Fprintf(w, "testbed in %s (state %s/%s)\n", st.Dir, st.Dir, testbed.StateFile)
	if h := st.HAProxy; h != nil {
		fmt.Fprintf(w, "haproxy  http://%s  stats %s  source %s  log %s\n", h.Addr, h.StatsURL, h.Source, h.Log)
		if h.LogSource != "" {
			fmt.Fprintf(w, "         log source %s\n", h.LogSource)
		}
	}
	if n := st.NGINX; n != nil {
		fmt.Fprintf(w, "nginx    http://%s  source %s  config %s\n", n.Addr, n.Source, n.Config)
	}
	for _, p := range procs {
		state := "running"
		if !p.Alive {
			state = "NOT RUNNING"
		}
		fmt.Fprintf(w, "  %-8s %-10s pid %-7d %-21s %s\n", p.Role, p.Name, p.PID, p.Addr, state)
	}
	return nil
}
