package httpproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Envoy's ext_authz defaults.
const (
	extAuthzGRPCTimeout = 200 * time.Millisecond
	extAuthzHTTPTimeout = 200 * time.Millisecond
	extAuthzMaxBody     = 64 << 10
)

// extAuthzFilter is envoy.filters.http.ext_authz: it asks an authorization
// service, over HTTP or gRPC (envoy.service.auth.v3.Authorization/Check),
// whether a request may proceed.
type extAuthzFilter struct {
	cfg *runtime.ExtAuthz
	up  *upstream // the service's cluster; nil: dial server_uri directly
	uri *url.URL  // HTTP service base URI
}

func newExtAuthzFilter(cfg *runtime.ExtAuthz, c *Config) *extAuthzFilter {
	f := &extAuthzFilter{cfg: cfg}
	switch {
	case cfg.HTTP != nil:
		f.uri, _ = url.Parse(cfg.HTTP.URI)
		if c != nil {
			f.up = c.clusters[cfg.HTTP.Cluster]
		}
	case cfg.GRPC != nil && c != nil:
		f.up = c.clusters[cfg.GRPC.Cluster]
	}
	return f
}

// checkResult is an authorization decision.
type checkResult struct {
	ok       bool
	status   int
	body     []byte
	upstream http.Header // headers to set on the request sent upstream
	client   http.Header // headers for the denial sent to the client
}

func (f *extAuthzFilter) decode(fx *filterCtx) bool {
	if f.cfg.EnabledMetadata != nil && !f.cfg.EnabledMetadata.Match(fx.md) {
		return true
	}
	var extensions map[string]string
	if o := fx.override(); o != nil {
		extensions = o.ExtAuthzContext
	}
	var (
		res *checkResult
		err error
	)
	if f.cfg.GRPC != nil {
		res, err = f.checkGRPC(fx, extensions)
	} else {
		res, err = f.checkHTTP(fx)
	}
	if err != nil {
		fx.h.log.Debug("ext_authz check failed", "error", err)
		if f.cfg.FailureModeAllow {
			return true
		}
		code := f.cfg.StatusOnError
		if code == 0 {
			code = http.StatusForbidden
		}
		fx.reply(code, "UAEX", "")
		return false
	}
	if res.ok {
		for k, v := range res.upstream {
			fx.r.Header[k] = v
		}
		fx.req = nil
		return true
	}
	hd := fx.ex.Header()
	for k, v := range res.client {
		hd[k] = v
	}
	code := res.status
	if code == 0 {
		code = http.StatusForbidden
	}
	fx.reply(code, "UAEX", string(res.body))
	return false
}

// pick returns a transport and host:port to reach the service.
func (f *extAuthzFilter) pick(h2 bool) (http.RoundTripper, string, func(), error) {
	if f.up == nil {
		if f.uri == nil {
			return nil, "", nil, errors.New("ext_authz: no cluster")
		}
		return defaultAuthzTransport, f.uri.Host, func() {}, nil
	}
	res, ok := f.up.picker.Pick()
	if !ok {
		return nil, "", nil, fmt.Errorf("ext_authz: cluster %s: no healthy upstream", f.up.name)
	}
	rt := f.up.h1
	if h2 {
		rt = f.up.h2
	}
	return rt, res.Addr, res.Done, nil
}

var defaultAuthzTransport = &http.Transport{Proxy: nil, DisableKeepAlives: true}

func (f *extAuthzFilter) allowedHeader(name string) bool {
	if len(f.cfg.AllowedHeaders) == 0 {
		return true
	}
	lname := strings.ToLower(name)
	for i := range f.cfg.AllowedHeaders {
		if stringMatches(&f.cfg.AllowedHeaders[i], lname) {
			return true
		}
	}
	return false
}

func (f *extAuthzFilter) checkHTTP(fx *filterCtx) (*checkResult, error) {
	hs := f.cfg.HTTP
	timeout := hs.Timeout
	if timeout <= 0 {
		timeout = extAuthzHTTPTimeout
	}
	ctx, cancel := context.WithTimeout(fx.r.Context(), timeout)
	defer cancel()
	rt, addr, done, err := f.pick(false)
	if err != nil {
		return nil, err
	}
	defer done()
	u := &url.URL{Scheme: "http", Host: addr, Path: hs.PathPrefix + fx.r.URL.Path, RawQuery: fx.r.URL.RawQuery}
	req, err := http.NewRequestWithContext(ctx, fx.r.Method, u.String(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	req.Host = fx.r.Host
	if f.uri != nil && f.uri.Host != "" {
		req.Host = fx.r.Host // Envoy keeps the original :authority
	}
	for k, v := range fx.r.Header {
		// Envoy always sends Authorization; other headers when allowed.
		if k == "Authorization" || f.allowedHeader(k) {
			req.Header[k] = v
		}
	}
	for _, h := range hs.HeadersToAdd {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, extAuthzMaxBody))
	res := &checkResult{ok: resp.StatusCode == http.StatusOK, status: resp.StatusCode, body: body}
	if res.ok {
		res.upstream = pickHeaders(resp.Header, hs.AllowedUpstreamHeaders, false)
	} else {
		res.client = pickHeaders(resp.Header, hs.AllowedClientHeaders, true)
	}
	return res, nil
}

// pickHeaders copies the headers allowed by ms; with no matchers, none, or
// (all) every header but hop-by-hop and framing ones.
func pickHeaders(h http.Header, ms []runtime.StringMatch, all bool) http.Header {
	out := http.Header{}
	for k, v := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Host", "Date":
			continue
		}
		ok := all && len(ms) == 0
		for i := range ms {
			if stringMatches(&ms[i], strings.ToLower(k)) {
				ok = true
				break
			}
		}
		if ok {
			out[k] = v
		}
	}
	return out
}

// checkGRPC makes one Authorization/Check call over the cluster's HTTP/2
// transport: a unary gRPC call is a POST with a length-prefixed message and
// a grpc-status trailer.
func (f *extAuthzFilter) checkGRPC(fx *filterCtx, extensions map[string]string) (*checkResult, error) {
	g := f.cfg.GRPC
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = extAuthzGRPCTimeout
	}
	ctx, cancel := context.WithTimeout(fx.r.Context(), timeout)
	defer cancel()
	rt, addr, done, err := f.pick(true)
	if err != nil {
		return nil, err
	}
	defer done()
	msg, err := proto.Marshal(f.checkRequest(fx, extensions))
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	copy(frame[5:], msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+addr+"/envoy.service.auth.v3.Authorization/Check", bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	if g.Authority != "" {
		req.Host = g.Authority
	} else if f.up != nil {
		req.Host = f.up.name
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", timeout.Milliseconds()))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, extAuthzMaxBody))
	if err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status")
	}
	if resp.StatusCode != http.StatusOK || st != "0" || len(body) < 5 {
		return nil, fmt.Errorf("ext_authz: Check failed: http %d grpc-status %q", resp.StatusCode, st)
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if int(n) > len(body)-5 || body[0] != 0 {
		return nil, errors.New("ext_authz: malformed Check response")
	}
	var cr authv3.CheckResponse
	if err := proto.Unmarshal(body[5:5+n], &cr); err != nil {
		return nil, fmt.Errorf("ext_authz: %w", err)
	}
	res := &checkResult{ok: cr.GetStatus().GetCode() == 0}
	if res.ok {
		res.upstream = http.Header{}
		for _, h := range cr.GetOkResponse().GetHeaders() {
			res.upstream.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		return res, nil
	}
	d := cr.GetDeniedResponse()
	res.status = int(d.GetStatus().GetCode())
	res.body = []byte(d.GetBody())
	res.client = http.Header{}
	for _, h := range d.GetHeaders() {
		res.client.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	return res, nil
}

func (f *extAuthzFilter) checkRequest(fx *filterCtx, extensions map[string]string) *authv3.CheckRequest {
	r := fx.r
	q := fx.authzRequest()
	hdrs := map[string]string{
		":method": r.Method, ":path": r.URL.RequestURI(), ":authority": r.Host, ":scheme": q.Scheme,
	}
	for k, v := range r.Header {
		if f.allowedHeader(k) {
			hdrs[strings.ToLower(k)] = strings.Join(v, ",")
		}
	}
	peer := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	src := &authv3.AttributeContext_Peer{Address: peer(q.DirectRemoteIP.String(), 0)}
	if q.Peer != nil && len(q.Peer.URIs) > 0 {
		src.Principal = q.Peer.URIs[0]
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      src,
		Destination: &authv3.AttributeContext_Peer{Address: peer(q.DestinationIP.String(), uint32(q.DestinationPort))},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: fx.ex.info.RequestID, Method: r.Method, Headers: hdrs, Path: r.URL.RequestURI(),
			Host: r.Host, Scheme: q.Scheme, Protocol: r.Proto,
		}},
		ContextExtensions: extensions,
	}}
}
