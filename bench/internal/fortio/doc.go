// Package fortio drives the fortio load generator and reads its JSON results:
// latency percentiles, achieved rate and response codes, for HTTP/1.1 and gRPC
// ping runs.
package fortio
