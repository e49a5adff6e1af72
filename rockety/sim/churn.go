package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("sim: server closed")

// Churn's tick is one mutation's interval, kept within these bounds: shorter
// ticks would burn CPU on timers, longer ones would make a rate change wait.
const (
	minChurnTick = 5 * time.Millisecond
	maxChurnTick = time.Second
	// maxChurnBurst caps the catch-up after a stall (a stopped-the-world
	// debugger, a suspended laptop), so churn never floods the log at once.
	maxChurnBurst = 1000
)

func floatBits(f float64) uint64 { return math.Float64bits(f) }

func validChurn(rate float64) bool { return rate >= 0 && !math.IsInf(rate, 0) }

// Start launches the churn goroutine, which mutates Options.Resources at the
// current churn rate (creates, updates of 1-3 fields and deletes, about
// 30/50/20) until ctx ends or Close is called. With Faults.SoftDelete, its
// deletes are soft, it updates and deletes live items only, and about one
// mutation in 50 restores a soft-deleted item. It returns an error if the
// server was started before or is closed.
func (s *Server) Start(ctx context.Context) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return errors.New("sim: already started")
	}
	s.started = true
	s.wg.Add(1)
	go s.churnLoop(ctx)
	return nil
}

// SetChurn changes the background mutation rate (per second) at once; 0
// pauses churn. When it returns, no mutation due at the old rate is still to
// come: after SetChurn(0), LastSeq stays put until something else writes.
// The error matches ErrInvalid for a negative or infinite rate.
func (s *Server) SetChurn(rate float64) error {
	if !validChurn(rate) {
		return fmt.Errorf("%w: churn rate %g", ErrInvalid, rate)
	}
	// A batch of mutations in progress holds mu: storing the rate under mu
	// waits for it, and churn checks the rate under mu, so no batch counted
	// at the old rate lands after this returns.
	s.mu.Lock()
	s.churnBits.Store(floatBits(rate))
	s.mu.Unlock()
	select {
	case s.churnWake <- struct{}{}:
	default:
	}
	return nil
}

// Churn returns the background mutation rate per second.
func (s *Server) Churn() float64 { return math.Float64frombits(s.churnBits.Load()) }

// Close stops churn and waits for its goroutine to end. Serving requests
// still works after Close; it only ends background work. It is idempotent.
func (s *Server) Close() error {
	s.runMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.runMu.Unlock()
	s.wg.Wait()
	return nil
}

// churnLoop performs the mutations due since the last tick at each tick.
// Counting what is due, rather than one mutation per tick, keeps the rate
// right above what a timer can fire.
func (s *Server) churnLoop(ctx context.Context) {
	defer s.wg.Done()
	timer := time.NewTimer(maxChurnTick)
	defer timer.Stop()
	last := time.Now()
	due := 0.0
	for {
		rate := s.Churn()
		tick := maxChurnTick
		if rate > 0 {
			tick = min(maxChurnTick, max(minChurnTick, time.Duration(float64(time.Second)/rate)))
		}
		timer.Reset(tick)
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-s.churnWake:
			last, due = time.Now(), 0
		case t := <-timer.C:
			due += t.Sub(last).Seconds() * rate
			last = t
			n := min(int(due), maxChurnBurst)
			due -= math.Floor(due)
			if n > 0 {
				s.churn(n)
			}
		}
	}
}

func (s *Server) churn(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Churn() == 0 {
		return // paused since the batch was counted
	}
	t := s.now()
	soft := s.softDelete()
	for range n {
		s.churnOnceLocked(t, soft)
	}
}

// restoreOdds makes restores rare next to soft deletes (a fifth of churn),
// so that soft-deleted items pile up as they do in a real API, yet a test
// under churn soon sees an item re-created under its old id.
const restoreOdds = 50

// livePicks is how many random picks churn makes for a live item to update
// or delete before it creates one instead, when most items are soft-deleted.
const livePicks = 8

// churnOnceLocked makes one mutation. Its random draws, when no item is
// soft-deleted and SoftDelete is off, are the same as before soft deletes
// existed, so a seed churns as it always did.
func (s *Server) churnOnceLocked(t time.Time, soft bool) {
	resource := s.churned[s.rnd.IntN(len(s.churned))]
	c, _ := s.collLocked(resource, true)
	if soft && len(c.soft) > 0 && s.rnd.IntN(restoreOdds) == 0 {
		rec := c.soft[s.rnd.IntN(len(c.soft))]
		_, _ = s.updateLocked(resource, strconv.FormatInt(rec.id, 10), object{{deletedField, jsonNull}}, t)
		return
	}
	roll := s.rnd.IntN(10)
	var rec *record
	if roll >= 3 {
		rec = s.liveLocked(c)
	}
	switch {
	case rec == nil:
		s.generateLocked(resource, false, t)
	case roll < 8:
		fields := s.churnFieldsLocked(c.kind, rec.id)
		// Generated values always pass validation, so this cannot fail.
		_, _ = s.updateLocked(resource, strconv.FormatInt(rec.id, 10), fields, t)
	default:
		_ = s.deleteLocked(resource, strconv.FormatInt(rec.id, 10), t)
	}
}

// liveLocked picks a random item that is not soft-deleted, nil if none was
// found.
func (s *Server) liveLocked(c *collection) *record {
	if len(c.order) == 0 {
		return nil
	}
	for range livePicks {
		if rec := c.order[s.rnd.IntN(len(c.order))]; !rec.softDeleted() {
			return rec
		}
	}
	return nil
}

// churnFieldsLocked picks 1 to 3 distinct fields of the kind and new values.
func (s *Server) churnFieldsLocked(k *kind, id int64) object {
	n := min(1+s.rnd.IntN(3), len(k.mutable))
	perm := s.rnd.Perm(len(k.mutable))
	fields := make(object, 0, n)
	for _, i := range perm[:n] {
		name := k.mutable[i]
		val, err := json.Marshal(k.value(s.rnd, s.refLocked, name, id))
		if err != nil {
			continue
		}
		fields = append(fields, field{name, val})
	}
	return fields
}
