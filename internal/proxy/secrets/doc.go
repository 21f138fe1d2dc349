// Package secrets serves the file-based SDS names of docs/xds.md
// ("file-cert:CERT~KEY" and "file-root:CA") as a runtime.Secrets, the way
// Istio's agent serves a Gateway's credentialName from files in local mode.
// Other names go to a fallback (the workload identity agent).
//
//	Certificate/Roots(name) ──1 "file-*:"? else → Fallback
//	    ──2 stat the files at most once per CheckInterval; changed (size,
//	        mtime) → parse again; a parse failure keeps the last good value
//	    ──3 answer from the cache
//
// Reading is lazy and happens on the handshake path, so a rotated file
// takes effect on the next handshake without a watcher goroutine.
package secrets
