package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
)

func TestStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	store := publisher.NewStateStore(js, res.State)

	ids := []string{"42", "a.b", "x y", "=", "ünï/cödé", "-_"}
	revs := map[string]uint64{}
	for _, id := range ids {
		rev, err := commitOne(ctx, store, "tasks", id, []byte(fmt.Sprintf(`{"id":%q}`, id)), 0)
		if err != nil {
			t.Fatalf("put %q: %v", id, err)
		}
		revs[id] = rev
	}
	for _, id := range ids {
		e, err := stateOf(ctx, store, "tasks", id)
		if err != nil || string(e.Value) != fmt.Sprintf(`{"id":%q}`, id) || e.Revision != revs[id] || e.ID != id {
			t.Errorf("get %q = %+v, %v", id, e, err)
		}
	}

	// Compare-and-set: a stale revision is a conflict and changes nothing.
	if _, err := commitOne(ctx, store, "tasks", "42", []byte(`{"id":"42","v":2}`), revs["42"]+100); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("stale put err = %v, want ErrConflict", err)
	}
	if _, err := commitOne(ctx, store, "tasks", "42", []byte(`{"id":"42"}`), 0); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("create over a live item err = %v, want ErrConflict", err)
	}
	rev2, err := commitOne(ctx, store, "tasks", "42", []byte(`{"id":"42","v":2}`), revs["42"])
	if err != nil || rev2 <= revs["42"] {
		t.Fatalf("update = %d, %v; want a larger revision than %d", rev2, err, revs["42"])
	}

	// Delete leaves a tombstone whose revision a re-create replaces.
	if _, err := commitOne(ctx, store, "tasks", "a.b", nil, revs["42"]); !errors.Is(err, publisher.ErrConflict) {
		t.Errorf("stale delete err = %v, want ErrConflict", err)
	}
	tomb, err := commitOne(ctx, store, "tasks", "a.b", nil, revs["a.b"])
	if err != nil || tomb <= revs["a.b"] {
		t.Fatalf("delete = %d, %v", tomb, err)
	}
	if st, err := stateOf(ctx, store, "tasks", "a.b"); err != nil || !st.Deleted || st.Value != nil || st.Revision != tomb {
		t.Errorf("deleted item = %+v, %v; want a delete marker at %d", st, err, tomb)
	}
	// Another resource with the same ids does not leak into tasks.
	if _, err := commitOne(ctx, store, "users", "42", []byte(`{"id":42}`), 0); err != nil {
		t.Fatal(err)
	}

	var loaded []plan.State
	if err := store.Load(ctx, "tasks", nil, func(e plan.State) error {
		e.Value = append([]byte(nil), e.Value...)
		loaded = append(loaded, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(loaded, func(i, j int) bool { return loaded[i].ID < loaded[j].ID })
	if len(loaded) != len(ids) {
		t.Fatalf("loaded %d entries, want %d: %+v", len(loaded), len(ids), loaded)
	}
	for _, e := range loaded {
		switch e.ID {
		case "a.b":
			if !e.Deleted || e.Revision != tomb || e.Value != nil {
				t.Errorf("tombstone = %+v, want deleted at %d", e, tomb)
			}
		case "42":
			// The load reads the hashes stored with the value, not the value.
			c, r := plan.ValueHashes([]byte(`{"id":"42","v":2}`))
			if e.Revision != rev2 || !e.Hashed || e.Hash != c || e.RawHash != r || e.Value != nil {
				t.Errorf("42 = %+v, want revision %d and hashes %x %x without a value", e, rev2, c, r)
			}
		default:
			c, r := plan.ValueHashes([]byte(fmt.Sprintf(`{"id":%q}`, e.ID)))
			if e.Deleted || e.Revision != revs[e.ID] || !e.Hashed || e.Hash != c || e.RawHash != r {
				t.Errorf("%q = %+v", e.ID, e)
			}
		}
	}

	again, err := commitOne(ctx, store, "tasks", "a.b", []byte(`{"id":"a.b"}`), tomb)
	if err != nil || again <= tomb {
		t.Errorf("re-create after delete = %d, %v", again, err)
	}

	// An empty resource loads nothing, quickly.
	n := 0
	if err := store.Load(ctx, "projects", nil, func(plan.State) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("empty load: %d entries, %v", n, err)
	}
	stop := errors.New("stop")
	if err := store.Load(ctx, "tasks", nil, func(plan.State) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("load err = %v, want the callback's error", err)
	}
}

// A mirror written by a bridge that stored no hashes (or hashes of
// another version) is loaded with its values, each entry as it is now.
func TestLoadReadsValuesOfEntriesWithoutHashes(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	store := publisher.NewStateStore(js, res.State)
	want := map[string]string{}
	for i := range 50 {
		id, value := fmt.Sprint(i), fmt.Sprintf(`{"id":%d, "n":"v%d"}`, i, i)
		want[id] = value
		switch i % 4 {
		case 0: // by this bridge, with hashes
			if _, err := commitOne(ctx, store, "tasks", id, []byte(value), 0); err != nil {
				t.Fatal(err)
			}
		case 1: // by an older one, without
			if _, err := res.State.Put(ctx, "tasks."+id, []byte(value)); err != nil {
				t.Fatal(err)
			}
		case 2: // with hashes of a version this one does not know
			m := nats.NewMsg("$KV." + res.State.Bucket() + ".tasks." + id)
			m.Data = []byte(value)
			m.Header.Set(plan.HashHeader, "x0:0000000000000001:0000000000000002")
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		case 3: // by a bridge of another deployment (another hash key)
			ours := plan.HashKey()
			plan.UseHashKey([2]uint64{ours[0] + 1, ours[1]})
			_, err := commitOne(ctx, store, "tasks", id, []byte(value), 0)
			plan.UseHashKey(ours)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[string]plan.State{}
	if err := store.Load(ctx, "tasks", nil, func(e plan.State) error {
		e.Value = append([]byte(nil), e.Value...)
		got[e.ID] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("loaded %d entries, want %d", len(got), len(want))
	}
	for id, value := range want {
		e := got[id]
		wc, wr := plan.ValueHashes([]byte(value))
		if gc, gr := e.Hashes(); gc != wc || gr != wr {
			t.Errorf("%s: hashes %x %x (%+v), want those of %s: %x %x", id, gc, gr, e, value, wc, wr)
		}
	}
}

func TestLeases(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t) // lease TTL 1s
	a, err := publisher.NewLeases(ctx, res.Leases, "pod-a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := publisher.NewLeases(ctx, res.Leases, "pod-b")
	if a.TTL() != time.Second {
		t.Fatalf("TTL = %s", a.TTL())
	}

	la, held, _, err := a.Acquire(ctx, "tasks")
	if err != nil || !held || !la.Valid(time.Now()) {
		t.Fatalf("a acquire = %v, %v", held, err)
	}
	if _, held, holder, err := b.Acquire(ctx, "tasks"); err != nil || held || holder != "pod-a" {
		t.Fatalf("b acquire while a holds = %v, holder %q, %v", held, holder, err)
	}
	// Renewing keeps it past the TTL.
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		if la, err = a.Renew(ctx, la); err != nil {
			t.Fatal(err)
		}
		if _, held, _, _ := b.Acquire(ctx, "tasks"); held {
			t.Fatal("b took a lease that a keeps renewing")
		}
	}

	// a stops renewing: b gets the lease within the TTL (and a little slack
	// for the server's expiry timer), and a learns it is gone.
	stopped := time.Now()
	var lb publisher.Lease
	for {
		if lb, held, _, err = b.Acquire(ctx, "tasks"); err != nil {
			t.Fatal(err)
		}
		if held {
			break
		}
		if time.Since(stopped) > 3*time.Second {
			t.Fatal("b did not get the lease within 3s of a 1s TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lease passed on %s after the last renewal", time.Since(stopped).Round(10*time.Millisecond))
	if la.Valid(time.Now()) {
		t.Error("a's lease still looks valid to a after the TTL")
	}
	if _, err := a.Renew(ctx, la); !errors.Is(err, publisher.ErrLeaseLost) {
		t.Errorf("a renew after losing = %v, want ErrLeaseLost", err)
	}

	// A restart of b (same instance id) takes its own lease over at once.
	b2, _ := publisher.NewLeases(ctx, res.Leases, "pod-b")
	lb2, held, _, err := b2.Acquire(ctx, "tasks")
	if err != nil || !held {
		t.Fatalf("restarted b acquire = %v, %v", held, err)
	}
	if _, err := b.Renew(ctx, lb); !errors.Is(err, publisher.ErrLeaseLost) {
		t.Errorf("old b renew after the takeover = %v, want ErrLeaseLost", err)
	}
	// Release hands it on without waiting for the TTL; releasing twice is harmless.
	if err := b2.Release(ctx, lb2); err != nil {
		t.Fatal(err)
	}
	if err := b2.Release(ctx, lb2); err != nil {
		t.Errorf("second release: %v", err)
	}
	if _, held, _, err := a.Acquire(ctx, "tasks"); err != nil || !held {
		t.Errorf("a acquire after release = %v, %v", held, err)
	}
}

func TestLeaseHasOneHolderUnderContention(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	holders := 0
	for i := range 10 {
		l, err := publisher.NewLeases(ctx, res.Leases, fmt.Sprintf("pod-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, held, _, err := l.Acquire(ctx, "users")
			if err != nil {
				t.Error(err)
			}
			if held {
				mu.Lock()
				holders++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if holders != 1 {
		t.Errorf("%d holders of one lease", holders)
	}
}

func TestLookupCommitAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	store := publisher.NewStateStore(js, res.State)

	// More ids than one batched request holds, some never stored.
	var writes []plan.Write
	for i := range 600 {
		writes = append(writes, plan.Write{ID: fmt.Sprintf("id.%d", i), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	done, err := store.Commit(ctx, "tasks", writes)
	if err != nil {
		t.Fatal(err)
	}
	// A stale write conflicts without failing the others.
	again, err := store.Commit(ctx, "tasks", []plan.Write{
		{ID: "id.0", Value: []byte(`{"n":"stale"}`), Replaces: 0},
		{ID: "id.1", Replaces: done[1].Revision}, // delete
	})
	if err != nil || !again[0].Conflict || again[1].Conflict || again[1].Revision <= done[1].Revision {
		t.Fatalf("commit = %+v, %v", again, err)
	}
	ids := []string{"id.0", "id.1", "never", "id.599"}
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("missing.%d", i))
	}
	got, err := store.Lookup(ctx, "tasks", ids)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Revision != done[0].Revision || string(got[0].Value) != `{"n":0}` ||
		!got[1].Deleted || got[1].Revision != again[1].Revision ||
		got[2].Revision != 0 || got[2].ID != "never" ||
		string(got[3].Value) != `{"n":599}` {
		t.Errorf("lookup = %+v", got[:4])
	}
	for _, e := range got[4:] {
		if e.Revision != 0 || e.Value != nil {
			t.Fatalf("missing id found: %+v", e)
		}
	}
	// An id asked for twice is answered twice.
	twice, err := store.Lookup(ctx, "tasks", []string{"id.5", "id.6", "id.5", "never", "never"})
	if err != nil {
		t.Fatal(err)
	}
	if twice[0].Revision != done[5].Revision || twice[2].Revision != done[5].Revision || string(twice[2].Value) != `{"n":5}` ||
		twice[2].ID != "id.5" || twice[4].ID != "never" || twice[4].Revision != 0 {
		t.Errorf("lookup with repeated ids = %+v", twice)
	}
	// One id at a time takes another path (a direct get of its own).
	for i, id := range ids[:4] {
		one, err := store.Lookup(ctx, "tasks", []string{id})
		if err != nil {
			t.Fatal(err)
		}
		if one[0].ID != got[i].ID || one[0].Revision != got[i].Revision || one[0].Deleted != got[i].Deleted ||
			string(one[0].Value) != string(got[i].Value) {
			t.Errorf("lookup of %s alone = %+v, in a batch %+v", id, one[0], got[i])
		}
	}

	n := 0
	if err := store.Load(ctx, "tasks", nil, func(plan.State) error { n++; return nil }); err != nil || n != 600 {
		t.Errorf("load: %d entries, %v; want 600", n, err)
	}
}

// TestCommitWithALostAckFailsInsteadOfStalling: the writes reach the
// server, but its answers are lost on the way back (a proxy drops them
// while the connection stays up). Commit gives up after AckWait with an
// error the cycle retries, not at the end of a context without deadline.
func TestCommitWithALostAckFailsInsteadOfStalling(t *testing.T) {
	srv := natstest.Start(t)
	proxy := newMutingProxy(t, srv.Addr().String())
	nc, err := nats.Connect("nats://"+proxy.addr, nats.PingInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	res, err := publisher.Provision(context.Background(), js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	store := publisher.NewStateStore(js, res.State)
	store.AckWait = 300 * time.Millisecond
	proxy.mute.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := store.Commit(context.Background(), "tasks", []plan.Write{{ID: "1", Value: []byte(`{"id":1}`)}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unacknowledged after 300ms") || !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Errorf("commit without acks: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Commit still waits for an ack that will never come")
	}
}

// mutingProxy forwards a NATS connection and, once muted, drops what the
// server sends: requests arrive, answers are lost.
type mutingProxy struct {
	addr string
	mute atomic.Bool
}

func newMutingProxy(t *testing.T, server string) *mutingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &mutingProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", server)
			if err != nil {
				_ = client.Close()
				continue
			}
			t.Cleanup(func() { _ = client.Close(); _ = upstream.Close() })
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(upstream, client) }()
			go func() {
				defer wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := upstream.Read(buf)
					if n > 0 && !p.mute.Load() {
						if _, werr := client.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// commitOne writes one item through Commit, as the bridge does (a nil
// value deletes), and reports a conflict as publisher.ErrConflict.
func commitOne(ctx context.Context, store *publisher.StateStore, resource, id string, value []byte, replaces uint64) (uint64, error) {
	res, err := store.Commit(ctx, resource, []plan.Write{{ID: id, Value: value, Replaces: replaces}})
	if err != nil {
		return 0, err
	}
	if res[0].Conflict {
		return 0, publisher.ErrConflict
	}
	return res[0].Revision, nil
}

// stateOf reads one item's stored state.
func stateOf(ctx context.Context, store *publisher.StateStore, resource, id string) (plan.State, error) {
	st, err := store.Lookup(ctx, resource, []string{id})
	if err != nil {
		return plan.State{}, err
	}
	return st[0], nil
}

// Every replica of a deployment hashes with one key: the first stores its
// own, the others read it; a damaged key is an error that says what to do.
func TestHashKeyIsTheDeployments(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t)
	first, err := publisher.HashKey(ctx, res.Checkpoints)
	if err != nil || first != plan.HashKey() {
		t.Fatalf("first HashKey = %x, %v; want this process's %x", first, err, plan.HashKey())
	}
	old := plan.HashKey()
	plan.UseHashKey([2]uint64{7, 8}) // another process, with its own random key
	defer plan.UseHashKey(old)
	again, err := publisher.HashKey(ctx, res.Checkpoints)
	if err != nil || again != first {
		t.Fatalf("a second replica's HashKey = %x, %v; want the stored %x", again, err, first)
	}
	if _, err := res.Checkpoints.Put(ctx, "=hash-key", []byte("nope")); err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.HashKey(ctx, res.Checkpoints); err == nil || !strings.Contains(err.Error(), "delete the key") {
		t.Fatalf("a damaged key: %v", err)
	}
}

// Forget drops a delete marker that is still its key's last entry, and
// leaves a key written again since; RevisionAt finds the revision at a
// time.
func TestForgetDropsOnlyLastMarkers(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	store := publisher.NewStateStore(js, res.State)
	var markers []plan.Marker
	for _, id := range []string{"1", "2"} {
		rev, err := commitOne(ctx, store, "tasks", id, []byte(`{"id":`+id+`}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		if rev, err = commitOne(ctx, store, "tasks", id, nil, rev); err != nil {
			t.Fatal(err)
		}
		markers = append(markers, plan.Marker{ID: id, Revision: rev})
	}
	between := time.Now()
	time.Sleep(10 * time.Millisecond)
	// 2 is created again after its marker was listed for compaction.
	again, err := commitOne(ctx, store, "tasks", "2", []byte(`{"id":2,"back":true}`), markers[1].Revision)
	if err != nil {
		t.Fatal(err)
	}
	if at, err := store.RevisionAt(ctx, between); err != nil || at != again {
		t.Errorf("RevisionAt(between) = %d, %v; want %d, the write after it", at, err, again)
	}
	if at, err := store.RevisionAt(ctx, time.Now().Add(time.Minute)); err != nil || at != again+1 {
		t.Errorf("RevisionAt(later) = %d, %v; want %d, the next revision", at, err, again+1)
	}
	gone, err := store.Forget(ctx, "tasks", markers)
	if err != nil || len(gone) != 2 || !gone[0] {
		t.Fatalf("Forget: %v, %v", gone, err)
	}
	one, _ := stateOf(ctx, store, "tasks", "1")
	two, _ := stateOf(ctx, store, "tasks", "2")
	if !one.Absent || one.Revision != 0 {
		t.Errorf("1 after Forget: %+v, want absent", one)
	}
	if !two.Live() || two.Revision != again || string(two.Value) != `{"id":2,"back":true}` {
		t.Errorf("2, written again after its marker: %+v, want it live at %d", two, again)
	}
	// An absent entry is created with no revision expected.
	if _, err := store.Commit(ctx, "tasks", []plan.Write{{ID: "1", Value: []byte(`{"id":1}`), Replaces: 99, Absent: true}}); err != nil {
		t.Fatal(err)
	}
	if s, _ := stateOf(ctx, store, "tasks", "1"); !s.Live() {
		t.Errorf("1 created over the floor: %+v", s)
	}
}
