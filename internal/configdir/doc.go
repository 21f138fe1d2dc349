// Package configdir is the directory source trellisd reads its configuration
// from: every *.yaml and *.yml file directly in one directory (hidden files
// and subdirectories are ignored), parsed by package config.
//
//	fsnotify events ──1 debounce (75 ms, at most 500 ms)──┐
//	safety rescan (every 2 s) ────────────────────────────┤
//	                                                      ▼
//	        2 Rescan: list dir, read each file, skip unchanged (sha256)
//	        3 ParseFile the changed ones; apply last-good rules per file
//	        4 Merge every file's in-force resources (duplicates: first file wins)
//	        5 log new errors (component=configdir), Version++
//	        6 offer Update to each subscriber: latest wins, never blocks
//
// Last-good rules:
//   - a resource whose new version is invalid keeps its previous valid
//     version in force (the document's identity must still be readable);
//   - a file that cannot be read or is not valid YAML keeps every resource it
//     contributed before;
//   - a deleted (or renamed-away) file removes its resources.
//
// Every Update carries the complete current error list, so a subscriber can
// show it without remembering earlier ones. Editors that save by writing a
// temporary file and renaming it over the original produce Create/Rename
// events that trigger the same rescan.
package configdir
