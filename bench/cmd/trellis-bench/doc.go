// Command trellis-bench is the benchmark harness behind `make bench` (issue 5).
// It runs every scenario on loopback, prints a table and writes it to
// bench/results as Markdown and JSON with a description of the machine.
//
//	1 setup: find fortio, HAProxy, nginx (bench/setup.sh installs them) and
//	  build trellisd + trellis-proxy; whatever is missing turns the
//	  scenarios that need it into "skipped: reason" rows
//	2 latency: fortio → hop → hop → fortio server at 1000 rps, 16 and 4
//	  connections, for no mesh, Trellis, HAProxy and nginx; CPU and RSS of
//	  every proxy process from /proc; CPU/heap profiles of the client sidecar
//	  from an extra run that is not measured
//	3 saturation: one proxy pinned to one core at maximum rate, against
//	  HAProxy nbthread 1 on the same core
//	4 gRPC unary and multiplexed streams through two hops; TCP MB/s through
//	  one proxy
//	5 memory: sidecar RSS idle and at 1000 rps with 10/100/1000 services,
//	  and slopes per cluster and per endpoint
//	6 control plane: N simulated proxies (SotW and delta, with and without
//	  Sidecar scoping) against trellisd; time to ACK a change, bytes per
//	  proxy per change, CPU per push, memory per proxy
//	7 go test -bench -benchmem ./internal/proxy/...
//	8 targets checked as ratios from this run's numbers, PASS/FAIL/SKIP
//
// Environment (read here in cmd/ only): BENCH_QUICK=1 for a smoke run with
// short durations and small sizes; BENCH_DURATION overrides each load run's
// length; BENCH_ONLY=latency,memory,... runs a subset.
package main
