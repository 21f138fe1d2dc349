// Package snapshot holds the control plane's single immutable input to
// translation: one coherent view of config and registry at a version.
//
//	config source ──┐
//	                ├─1 Build──▶ *Snapshot (immutable, versioned) ──2──▶ translator
//	registry source ┘
//
// Producers publish a new Snapshot on every change; consumers read the latest
// one and never see a backlog (latest wins).
package snapshot
