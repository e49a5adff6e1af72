package poller

import "errors"

// ErrNotHolder: this replica does not hold the resource's lease, so
// another one polls it and answers for it.
var ErrNotHolder = errors.New("poller: this replica does not hold the resource's lease")

// resyncRequest is a resync asked for (P.control.resync.<resource>).
type resyncRequest struct {
	id       string
	snapshot bool
}

// Resync asks for a resync: the next cycle, started at once, is a full
// traversal; with snapshot it also publishes one snapshot event per listed
// item, unchanged ones too, each carrying the resync id, as the cycle's
// report does. A resync asked for while another waits to begin joins it
// (a snapshot if either asked for one): the id returned is the one the
// report will carry. Only the lease holder resyncs; any other replica
// refuses with ErrNotHolder.
func (p *Poller) Resync(id string, snapshot bool) (string, error) {
	if p.checkLease() != nil {
		return "", ErrNotHolder
	}
	p.resyncMu.Lock()
	if p.resync == nil {
		p.resync = &resyncRequest{id: id}
	}
	p.resync.snapshot = p.resync.snapshot || snapshot
	id = p.resync.id
	p.resyncMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return id, nil
}

// takeResync returns the resync asked for, if any, and forgets it: the
// cycle that takes it runs it.
func (p *Poller) takeResync() *resyncRequest {
	p.resyncMu.Lock()
	defer p.resyncMu.Unlock()
	rs := p.resync
	p.resync = nil
	return rs
}
