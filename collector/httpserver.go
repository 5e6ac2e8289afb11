package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// opsServer serves /healthz, /readyz and /metrics.
type opsServer struct {
	srv *http.Server
	ln  net.Listener
}

// ready reports why the collector cannot take traffic, or "" when it can.
type readiness func() string

func newOpsServer(addr string, m *promMetrics, ready readiness) (*opsServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := ready(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 10 * time.Second}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("GP_COLLECTOR_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	return &opsServer{srv: srv, ln: ln}, nil
}

// Addr is the address actually listened on (useful with port 0).
func (o *opsServer) Addr() string { return o.ln.Addr().String() }

// Serve runs until Shutdown.
func (o *opsServer) Serve() error {
	if err := o.srv.Serve(o.ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// Shutdown stops the server, waiting for requests in flight.
func (o *opsServer) Shutdown(ctx context.Context) error { return o.srv.Shutdown(ctx) }
