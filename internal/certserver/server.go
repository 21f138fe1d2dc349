package certserver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/trellis-mesh/trellis/internal/ca"
)

// Metadata keys a local-mode proxy sends with CreateCertificate.
const (
	// AuthorizationKey carries "Bearer TOKEN".
	AuthorizationKey = "authorization"
	// WorkloadKey carries the WorkloadEntry the caller claims, "NS/NAME".
	WorkloadKey = "x-trellis-workload"
)

// Authenticator proves who is calling and returns the only identity the
// caller may be issued. It reads what it needs from ctx (gRPC metadata, peer).
// It must be safe for concurrent use and should not block for long.
// Implementations: JoinTokens (local mode), TokenReview (Kubernetes mode).
type Authenticator interface {
	Authenticate(ctx context.Context) (spiffeid.ID, error)
}

// Signer signs a CSR for an identity (*ca.CA).
type Signer interface {
	Sign(csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error)
}

var _ Signer = (*ca.CA)(nil)

// ErrUnauthenticated is wrapped by authenticators for a missing or bad
// credential.
var ErrUnauthenticated = errors.New("unauthenticated")

// Options configure a Server.
type Options struct {
	CA            Signer        // required
	Authenticator Authenticator // required
	// Registerer receives Istio's citadel_server_* metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// Logger; nil uses slog.Default(). The server adds component=certserver.
	Logger *slog.Logger
}

// Server implements IstioCertificateService.
type Server struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	opts    Options
	log     *slog.Logger
	csrs    prometheus.Counter
	issued  prometheus.Counter
	authErr prometheus.Counter
	refused prometheus.Counter
}

var _ securityv1alpha1.IstioCertificateServiceServer = (*Server)(nil)

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.CA == nil || o.Authenticator == nil {
		return nil, errors.New("certserver: Options.CA and Options.Authenticator are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		opts: o,
		log:  o.Logger.With("component", "certserver"),
		csrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_count",
			Help: "The number of CSRs received by the CA."}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_success_cert_issuance_count",
			Help: "The number of certificates issued."}),
		authErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_authentication_failure_count",
			Help: "The number of CSRs refused because the caller could not be authenticated."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_sign_error_count",
			Help: "The number of CSRs refused after authentication (bad CSR or another identity)."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.csrs, s.issued, s.authErr, s.refused} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("certserver: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Register adds the service to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate authenticates the caller, then signs the CSR for the
// caller's own identity only. Refusals are logged with the caller's address.
func (s *Server) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	s.csrs.Inc()
	from := ""
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	id, err := s.opts.Authenticator.Authenticate(ctx)
	if err != nil {
		s.authErr.Inc()
		s.log.Warn("CSR refused: authentication failed", "peer", from, "workload", claimed(ctx), "error", err)
		return nil, status.Error(codes.Unauthenticated, "authentication failed")
	}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		s.refused.Inc()
		s.log.Warn("CSR refused: not a PEM certificate request", "peer", from, "identity", id.String())
		return nil, status.Error(codes.InvalidArgument, "csr: not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		s.refused.Inc()
		s.log.Warn("CSR refused: unparsable", "peer", from, "identity", id.String(), "error", err)
		return nil, status.Error(codes.InvalidArgument, "csr: cannot parse")
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	chain, err := s.opts.CA.Sign(csr, id, ttl)
	if err != nil {
		s.refused.Inc()
		s.log.Warn("CSR refused", "peer", from, "identity", id.String(), "asked_for", csrURIs(csr), "error", err)
		if errors.Is(err, ca.ErrIdentity) {
			return nil, status.Error(codes.PermissionDenied, "csr asks for an identity the caller does not have")
		}
		return nil, status.Error(codes.InvalidArgument, "csr refused")
	}
	s.issued.Inc()
	s.log.Info("certificate issued", "peer", from, "identity", id.String(), "not_after", chain[0].NotAfter)
	resp := &securityv1alpha1.IstioCertificateResponse{}
	for _, c := range chain {
		resp.CertChain = append(resp.CertChain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	return resp, nil
}

func claimed(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(WorkloadKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

func csrURIs(csr *x509.CertificateRequest) string {
	var s []string
	for _, u := range csr.URIs {
		s = append(s, u.String())
	}
	return strings.Join(s, ",")
}
