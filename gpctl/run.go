package main

import (
	"context"
	"fmt"
	"io"

	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/settings"
)

// run dispatches gpctl's commands; main only calls it.
func run(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return usage(stderr)
	}
	switch args[1] {
	case "provision":
		return provision.Run(args[2:], stdout, stderr)
	case "probe":
		return probe(ctx, args[2:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, "usage:\n  "+provision.Usage+"\n  "+probeUsage)
		return nil
	}
	return usage(stderr)
}

func usage(stderr io.Writer) error {
	fmt.Fprintln(stderr, "usage:\n  "+provision.Usage+"\n  "+probeUsage)
	return &settings.Error{Problems: []string{"want a command: provision or probe"}}
}
