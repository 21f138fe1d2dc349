package main

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/trellis-mesh/trellis/internal/ca"
	"github.com/trellis-mesh/trellis/internal/certserver"
)

// inCluster is the --kubeconfig value that selects the pod's own service
// account (rest.InClusterConfig) instead of a kubeconfig file.
const inCluster = "in-cluster"

// kubeAuthenticator is the CSR API's Kubernetes mode (issue 4 point 2):
// callers prove themselves with a service-account JWT that trellisd reviews
// with the API server kubeconfig points to (or, for "in-cluster", the one
// trellisd runs in).
func kubeAuthenticator(kubeconfig string, c *ca.CA) (certserver.Authenticator, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == inCluster {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return certserver.TokenReview{Reviews: cs.AuthenticationV1().TokenReviews(), Identity: c.Identity}, nil
}
