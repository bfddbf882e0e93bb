package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lbtune/lbtune/api"
)

func init() {
	register(&command{
		name:    "node",
		summary: "register, drain+remove or launch a server (node add POOL ADDR | rm POOL NAME | launch POOL)",
		run:     nodeRun,
	})
}

func nodeRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("node", stderr)
	c := clientFlags(fs)
	name := fs.String("name", "", "server name for add (default: derived from the address)")
	size := fs.String("size", "", "template size for launch")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbtune node [flags] add POOL HOST:PORT | rm POOL NAME | launch POOL")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a := fs.Args()
	var req api.NodeRequest
	switch {
	case len(a) == 3 && a[0] == "add":
		req = api.NodeRequest{Op: "add", Pool: a[1], Address: a[2], Name: *name}
	case len(a) == 3 && a[0] == "rm":
		req = api.NodeRequest{Op: "rm", Pool: a[1], Name: a[2]}
	case len(a) == 2 && a[0] == "launch":
		req = api.NodeRequest{Op: "launch", Pool: a[1], Size: *size}
	default:
		return fmt.Errorf("%w: want add POOL HOST:PORT, rm POOL NAME or launch POOL", errUsage)
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	out, err := c.postJSON(ctx, "/v1/nodes", req)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out["result"])
	return nil
}
