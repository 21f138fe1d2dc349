// Package monitor is trellisd's monitoring HTTP server (istiod's :15014):
//
//	/metrics        Prometheus exposition of the injected Gatherer
//	/ready          200 once Ready reports true, else 503
//	/debug/syncz    JSON: every connected proxy's xDS delivery state
//	/debug/configz  JSON: the configuration in force, each resource with its origin
//
// The handlers only read through the functions they are given; they hold no
// state of their own and never block on the control plane's work.
package monitor
