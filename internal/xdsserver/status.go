package xdsserver

import (
	"cmp"
	"slices"
	"time"
)

// ProxyStatus is one connected proxy's delivery state, as istiod's
// /debug/syncz reports it.
type ProxyStatus struct {
	NodeID         string    `json:"nodeId"`
	ConnectedSince time.Time `json:"connectedSince"`
	Streams        int       `json:"streams"`
	// SnapshotVersion is the snapshot.Version the proxy's resources were last
	// computed from (also when nothing it sees changed); 0 before the first.
	SnapshotVersion uint64       `json:"snapshotVersion"`
	Types           []TypeStatus `json:"types"` // CDS, EDS, LDS, RDS, in that order
}

// TypeStatus is the delivery state of one xDS type to one proxy. Versions
// are opaque hashes of the type's resources; empty means none yet.
type TypeStatus struct {
	TypeURL      string    `json:"typeUrl"`
	SentVersion  string    `json:"sentVersion,omitempty"`
	AckedVersion string    `json:"ackedVersion,omitempty"`
	Pushes       uint64    `json:"pushes"` // responses sent on all the proxy's streams
	LastNACK     string    `json:"lastNack,omitempty"`
	LastNACKTime time.Time `json:"lastNackTime,omitzero"`
}

// Synced reports whether the proxy accepted the last version sent.
func (t TypeStatus) Synced() bool { return t.SentVersion != "" && t.SentVersion == t.AckedVersion }

// Status returns every connected proxy's state, sorted by node id.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.nodes))
	for _, n := range s.nodes {
		ps := ProxyStatus{
			NodeID:          n.id,
			ConnectedSince:  n.since,
			Streams:         n.streams,
			SnapshotVersion: n.snapVersion.Load(),
			Types:           make([]TypeStatus, 0, len(servedTypes)),
		}
		for _, t := range servedTypes {
			ts := TypeStatus{TypeURL: t.url}
			if st := n.types[t.url]; st != nil {
				ts.SentVersion, ts.AckedVersion, ts.Pushes = st.sent, st.acked, st.pushes
				ts.LastNACK, ts.LastNACKTime = st.nack, st.nackTime
			}
			ps.Types = append(ps.Types, ts)
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}
