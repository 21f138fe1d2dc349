// Package residency hands back to the kernel what a long-running process
// keeps resident only because it once started: the executable's pages
// that start-up touched, and heap freed since.
//
// A Go binary's text, rodata and pclntab are mapped from its file. Package
// initialisation runs code spread across the whole text (every package's
// init functions, protobuf-go registering every linked file descriptor),
// and the kernel maps the 64 KB around each page fault, so by the time a
// sidecar serves its first request nearly the whole binary is in its RSS
// (RssFile) whether or not it will run again. Release unmaps the
// executable's read-only mappings with MADV_DONTNEED: the pages stay in the
// page cache (shared by every process of the same binary on the node), and
// what the process runs afterwards faults back in, a minor fault per 64 KB
// window. Unmapped pages are inactive page cache, which the kernel reclaims
// first and which a container's working set does not count. Release then
// returns freed heap to the kernel (debug.FreeOSMemory).
//
// Writable mappings (data, bss) are never touched: MADV_DONTNEED on a
// private mapping would drop what the process wrote. The one visible
// effect besides RSS: software breakpoints a debugger placed in text are
// lost, because they live in private copies of the text pages.
//
// It uses the standard library only; trellisd could call it as well.
package residency
