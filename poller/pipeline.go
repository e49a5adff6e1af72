package poller

import (
	"errors"
	"sync"

	"github.com/rockety-io/rockety-bridge/plan"
)

// pipeline publishes a traversal's batches in three stages that overlap
// across batches: while one batch's writes are stored, the next one's
// events are published and the one after that is judged against the
// mirror. JetStream, the mirror and the decision each work on their own
// batch, so a mass update runs at the pace of the slowest stage, not of
// the three one after another.
//
// Each stage takes the batches in order. A batch holding an item that an
// earlier batch has not stored yet waits until it has: it is judged
// against what that one stored.
type pipeline struct {
	c         *cycle
	in        chan []Change
	decided   chan decided
	delivered chan delivered
	stopped   sync.WaitGroup

	mu sync.Mutex
	// changed signals a batch leaving the pipeline, or a failure.
	changed *sync.Cond
	// uncommitted counts, by item id, the changes judged and not yet
	// stored; pending the batches handed in and not yet through.
	uncommitted map[string]int
	pending     int
	err         error
	failed      chan struct{} // closed with the first error
}

// delivered is a batch whose events are acknowledged.
type delivered struct {
	ids        []string
	toCommit   []plan.Write
	tombstones map[string]Change
	err        error
}

func (c *cycle) startPipeline() *pipeline {
	pl := &pipeline{c: c, in: make(chan []Change, 1), decided: make(chan decided, 1), delivered: make(chan delivered, 1),
		uncommitted: map[string]int{}, failed: make(chan struct{})}
	pl.changed = sync.NewCond(&pl.mu)
	pl.stopped.Add(3)
	go pl.prepareAll()
	go pl.deliverAll()
	go pl.commitAll()
	return pl
}

// send hands a batch in; it blocks while the first stage is busy with
// another and one is waiting, and fails once the pipeline has failed.
func (pl *pipeline) send(batch []Change) error {
	pl.mu.Lock()
	if pl.err != nil {
		defer pl.mu.Unlock()
		return pl.err
	}
	pl.pending++
	pl.mu.Unlock()
	select {
	case <-pl.failed:
		pl.finished(nil, nil)
		return pl.failure()
	case pl.in <- batch:
		return nil
	}
}

// drain waits until every batch handed in is through.
func (pl *pipeline) drain() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for pl.pending > 0 && pl.err == nil {
		pl.changed.Wait()
	}
	return pl.err
}

// close lets the stages finish what they hold, waits for them, and
// returns the first error.
func (pl *pipeline) close() error {
	close(pl.in)
	pl.stopped.Wait()
	return pl.failure()
}

func (pl *pipeline) failure() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.err
}

func (pl *pipeline) fail(err error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.err == nil {
		pl.err = err
		close(pl.failed)
	}
	pl.changed.Broadcast()
}

// finished takes a batch out of the pipeline: its ids are stored (or
// given up).
func (pl *pipeline) finished(ids []string, err error) {
	if err != nil {
		pl.fail(err)
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, id := range ids {
		if pl.uncommitted[id]--; pl.uncommitted[id] <= 0 {
			delete(pl.uncommitted, id)
		}
	}
	pl.pending--
	pl.changed.Broadcast()
}

// admit waits until no item of batch is on its way through a later stage,
// then counts them in.
func (pl *pipeline) admit(batch []Change) []string {
	ids := make([]string, len(batch))
	for i, ch := range batch {
		ids[i] = ch.ID
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for pl.err == nil && pl.overlaps(ids) {
		pl.changed.Wait()
	}
	for _, id := range ids {
		pl.uncommitted[id]++
	}
	return ids
}

func (pl *pipeline) overlaps(ids []string) bool {
	for _, id := range ids {
		if pl.uncommitted[id] > 0 {
			return true
		}
	}
	return false
}

func (pl *pipeline) prepareAll() {
	defer pl.stopped.Done()
	defer close(pl.decided)
	for batch := range pl.in {
		if pl.failure() != nil {
			pl.finished(nil, nil) // drain: the traversal stops at its next page
			continue
		}
		ids := pl.admit(batch)
		d, err := pl.c.prepare(batch)
		if err != nil {
			pl.finished(ids, err)
			continue
		}
		d.ids = ids
		pl.decided <- d
	}
}

func (pl *pipeline) deliverAll() {
	defer pl.stopped.Done()
	defer close(pl.delivered)
	for d := range pl.decided {
		if pl.failure() != nil {
			pl.finished(d.ids, nil)
			continue
		}
		toCommit, err := pl.c.deliver(d.out, d.writes, &d.notes)
		pl.delivered <- delivered{ids: d.ids, toCommit: toCommit, tombstones: d.notes.tombstones, err: err}
	}
}

func (pl *pipeline) commitAll() {
	defer pl.stopped.Done()
	for d := range pl.delivered {
		// What was acknowledged is stored even when the batch failed
		// part-way, or an earlier one did: the events are out.
		err := pl.c.commit(d.toCommit, d.tombstones)
		pl.finished(d.ids, errors.Join(d.err, err))
	}
}
