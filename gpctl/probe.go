package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
)

// probeUsage is the synopsis of `gpctl probe`.
const probeUsage = `gpctl probe URL   (exit 0 when URL answers 2xx within 5 s: a container healthcheck)`

// probe is the healthcheck of the container images. They are distroless
// (no shell, no curl, nothing to exploit), so the check is a Go binary
// that is in every image anyway.
func probe(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return &settings.Error{Problems: []string{"usage: " + probeUsage}}
	}
	u, err := url.Parse(args[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &settings.Error{Problems: []string{fmt.Sprintf("probe: %q is not an http(s) URL", args[0])}}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s answered %s", u.Redacted(), resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", u.Redacted(), resp.Status)
	return nil
}
