// Package xdsload simulates a fleet of sidecars against a control plane: each
// simulated proxy is a real ADS client over its own gRPC connection, state of
// the world or delta, that subscribes the way Envoy does (CDS and LDS
// wildcard, then EDS for the EDS clusters and RDS for the route names the
// listeners reference), ACKs every response, and counts the bytes it
// receives.
//
//	trellisd ◀──ADS (one gRPC conn per proxy)──▶ proxy 0 … proxy N-1
//	  1 Fleet.Run starts every proxy; each sends CDS + LDS requests
//	  2 on CDS/LDS the proxy (un)subscribes EDS/RDS names, then ACKs
//	  3 Fleet.WaitSynced: every proxy has all four types and the fleet is quiet
//	  4 the harness installs a Watch for a marker, then edits one config file
//	  5 a proxy whose response carries the marker ACKs it and reports the
//	    time since the Watch started; Watch.Wait returns once every affected
//	    proxy has, or the deadline passes
//
// Responses are not decoded except clusters and listeners, which name the EDS
// and RDS subscriptions; the marker (a new endpoint address, a header value)
// is found in the resources' serialized bytes.
package xdsload
