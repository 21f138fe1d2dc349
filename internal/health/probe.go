package health

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	networkingv1 "istio.io/api/networking/v1"
)

// prober runs one probe attempt; nil means success. It must honour ctx's
// deadline (the probe's timeoutSeconds).
type prober func(ctx context.Context) error

// newProber builds the attempt function of probe p against the workload at
// addr, as the kubelet runs readiness probes: httpGet succeeds on a status
// in [200, 400) (HTTPS without certificate verification), tcpSocket on a
// completed connection, grpc on SERVING from grpc.health.v1.Health/Check.
// ok is false for probes trellisd cannot run (exec runs on the workload's
// host in Istio, where trellisd has no agent).
func newProber(p *networkingv1.ReadinessProbe, addr string) (run prober, ok bool) {
	switch {
	case p.GetHttpGet() != nil:
		return httpProber(p.GetHttpGet(), addr), true
	case p.GetTcpSocket() != nil:
		host := cmp.Or(p.GetTcpSocket().GetHost(), addr)
		target := net.JoinHostPort(host, strconv.FormatUint(uint64(p.GetTcpSocket().GetPort()), 10))
		return func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				return fmt.Errorf("tcp probe %s: %w", target, err)
			}
			return c.Close()
		}, true
	case p.GetGrpc() != nil:
		return grpcProber(p.GetGrpc(), addr), true
	}
	return nil, false
}

func httpProber(g *networkingv1.HTTPHealthCheckConfig, addr string) prober {
	scheme := "http"
	if strings.EqualFold(g.GetScheme(), "HTTPS") {
		scheme = "https"
	}
	host := cmp.Or(g.GetHost(), addr)
	path := cmp.Or(g.GetPath(), "/")
	url := scheme + "://" + net.JoinHostPort(host, strconv.FormatUint(uint64(g.GetPort()), 10)) + path
	headers := g.GetHttpHeaders()
	// One transport per target: no proxy from the environment, no
	// keep-alive (each probe is a fresh connection, as the kubelet's), and
	// no certificate verification for HTTPS, as the kubelet does.
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet semantics
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("http probe %s: %w", url, err)
		}
		req.Header.Set("User-Agent", "trellisd-probe")
		for _, h := range headers {
			if strings.EqualFold(h.GetName(), "host") {
				req.Host = h.GetValue()
				continue
			}
			req.Header.Add(h.GetName(), h.GetValue())
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("http probe %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("http probe %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}

func grpcProber(g *networkingv1.GrpcHealthCheckConfig, addr string) prober {
	target := net.JoinHostPort(addr, strconv.FormatUint(uint64(g.GetPort()), 10))
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("grpc probe %s: %w", target, err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: g.GetService()})
		if err != nil {
			return fmt.Errorf("grpc probe %s: %w", target, err)
		}
		if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc probe %s: status %s", target, s)
		}
		return nil
	}
}
