// Package nginx renders the nginx configuration of one reference hop
// (hop.conf.tmpl): HTTP/1.1 with an upstream keep-alive pool and gRPC over
// h2c, in the foreground with its files in a run directory.
package nginx
