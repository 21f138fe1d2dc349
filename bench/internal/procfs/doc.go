// Package procfs reads the few /proc numbers the benchmark needs: a process's
// CPU time (utime+stime from /proc/PID/stat), its resident memory (VmRSS from
// /proc/PID/status), its descendants (nginx and HAProxy fork workers), and a
// description of the machine (CPU model, cores, kernel).
//
// Parsing is split from reading: the Parse functions take bytes and are pure,
// fuzzed, and tested without processes.
package procfs
