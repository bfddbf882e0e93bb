package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

func init() {
	register(&command{
		name:    "template",
		summary: "start or gracefully stop a pool from its scaling template (template up|down FILE)",
		run:     templateRun,
	})
}

func templateRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("template", stderr)
	c := clientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbtune template [--addr A] [--token-file F] up|down FILE")
		fmt.Fprintln(stderr, "FILE is one pool entry of lbtune.yaml (name, source, actuator or sim, template).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "up" && fs.Arg(0) != "down") {
		return fmt.Errorf("%w: want up|down FILE", errUsage)
	}
	spec, err := os.ReadFile(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("read template: %w", err)
	}
	out, err := c.post(ctx, "/v1/templates/"+fs.Arg(0), "application/yaml", spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out["result"])
	return nil
}
