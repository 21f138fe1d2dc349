// Package proc starts and stops the processes of a benchmark topology (fortio,
// trellisd, trellis-proxy, HAProxy, nginx) and waits for them to be ready.
//
// Every Process is owned by whoever started it and must be closed: Close sends
// SIGTERM to the process group, waits a bounded time, then SIGKILLs. Output
// goes to a log file in the run directory so a failed scenario can say why.
package proc
