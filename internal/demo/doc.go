// Package demo runs the Bookinfo mesh on one machine: `trellis demo`, what
// `make demo` runs. It starts real processes, the same binaries a user runs,
// on the loopback addresses of docs/local-mesh.md, and stops every one of them
// when it is interrupted or when any of them dies.
//
//	trellis demo --dir DIR
//	  1 find bin/trellisd and bin/trellis-proxy next to the trellis executable
//	  2 check the demo's addresses are free (another demo still running?)
//	  3 write the embedded config to DIR/config (fresh), extras to DIR/extras
//	  4 start trellisd --config-dir DIR/config --data-dir DIR/data ──wait──▶ 127.0.0.1:15014/ready
//	      (DIR/data: the CA, root-cert.pem and a join token per workload)
//	  5 start six apps (`trellis demo app ...` on 127.0.20.N:9080) ──wait──▶ /health
//	  6 start one trellis-proxy --data-dir DIR/data per workload (127.0.10.N) and the
//	    gateway (127.0.0.1); each gets its certificate and follows xDS on 127.0.0.1:15012
//	      ──wait──▶ ADDRESS:15021/healthz/ready
//	  7 wait until http://127.0.0.1:8080/productpage answers 200 through the mesh
//	  8 print where everything runs, things to try, and the "ready:" line
//	  9 block until ctx is done (SIGINT/SIGTERM) or a child exits
//	 10 SIGTERM every child's process group, SIGKILL what is left after
//	    Options.StopTimeout, wait for all of them
//
// Each child writes stdout and stderr to DIR/logs/NAME.log. Children run in
// their own process group (so a terminal's Ctrl-C reaches only the demo, which
// stops them in order) and, on Linux, with a parent-death signal of SIGKILL, so
// that they die with the demo even when it is killed outright.
package demo
