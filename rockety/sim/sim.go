// Package sim is an in-memory simulator of the Rockety REST API, served as an
// http.Handler under the base path /api/v1. It is how users try the bridge
// without a Rockety account and how the tests and benchmarks of the bridge run:
// it seeds realistic data deterministically, changes it in the background at a
// set rate (churn), injects faults on demand, and records every change in a
// mutation log that tests use as ground truth.
//
// # The API
//
//	GET    /api/v1/<resource>?page=N&per_page=M  200 a page (see Style)
//	GET    /api/v1/<resource>?updated_since=T&page=N&per_page=M
//	                                             200 a page of the items changed since T, 400
//	GET    /api/v1/<resource>/<id>               200 the bare item, 404
//	POST   /api/v1/<resource>                    201 the created item, 400
//	PUT    /api/v1/<resource>/<id>               200 the updated item, 400, 404
//	DELETE /api/v1/<resource>/<id>               204, 404
//
// page defaults to 1 and must be a whole number >= 1. per_page defaults to
// DefaultPerPage and is clamped to [1, MaxPerPage]; the page's metadata shows
// the clamped value. A page past the end has no items and the usual metadata.
// An empty resource has total 0 and pages 0. Listing a resource name never
// seen before (any name matching [a-z][a-z0-9_-]*) answers an empty page; the
// first write creates it, with the generic item shape.
//
// Items are listed oldest first, in the order they were created, except that
// the drift fault inserts its items at the front. Ids are numbers, per resource,
// from 1 up, never reused.
//
// POST ignores any id, created_at and updated_at in the body: the server sets
// them. PUT merges the body's top-level fields into the item (null sets a field
// to null) and bumps updated_at; it ignores id, created_at and updated_at.
// Required fields (projects: name; tasks: title; users: name, email) must be
// non-empty strings, on create and when a PUT gives them.
//
// Every error has the body {"error":{"code":...,"message":...}}, with code
// unauthorized (401), not_found (404), bad_request (400), rate_limited (429),
// method_not_allowed (405) or internal (500 and other injected statuses).
// A request refused with an injected fault changes nothing.
//
// # Listing changes
//
// With updated_since, an RFC 3339 time (2025-06-02T09:00:00Z, or
// 2025-06-02T11:00:00.5%2B02:00 with the plus encoded), a list holds only the
// items whose updated_at is at or after it, ordered by updated_at and then
// id, and is paged like the unfiltered list, its metadata counting the
// filtered items. A malformed value answers 400 with a message that names
// updated_since. Every write stamps updated_at and so moves its item to the
// end of that order: a create, an update, a soft delete and a restore, by
// the API, the Go-side mutators, churn or drift; SetRaw keeps the updated_at
// it is given. A page is a window of the order at its request, so when an
// item changes while a client pages, the items behind its old place move up
// by one and a client that pages by offset skips one, as with any offset
// pagination over changing data. An item deleted for good is in no list.
//
// Faults.ChangesLag leaves a change out of filtered lists until that long
// after its updated_at (an eventually consistent search index); the
// unfiltered list and GET show it at once. Faults.IgnoreChangedSince answers
// every list unfiltered, whatever updated_since says, as an API without the
// filter does.
//
// A seeded resource sorts its items by updated_at on its first filtered list
// (a fraction of a second at a million items); from then on a page is found by
// binary search however many items there are, and a write costs a few
// microseconds more to keep the order.
//
// # Soft deletes
//
// With Faults.SoftDelete, a DELETE (and Delete, and churn's deletes) keeps
// the item: it sets deleted_at and updated_at to the time of the delete and
// answers 204, the item stays in every list and GET answers it, and the log
// records OpDeleted with the item as it is now. A PUT whose body sets
// deleted_at to null restores it (the body's other fields merge as in any
// PUT), bumps updated_at and is logged OpCreated under the same id; any
// other PUT or DELETE of a soft-deleted item answers 404, as for a missing
// one. While SoftDelete is on, deleted_at belongs to the server: POST and
// PUT ignore it but for that restore. Churn then updates and deletes live
// items only, and about one mutation in 50 restores a soft-deleted item.
//
// # Quota
//
// Faults.Quota is a real rate limit, where the other faults are random: N
// API requests per window D (rockety-sim -quota 100/10s), for the one
// token. Windows are fixed and start at the first request, not on the
// clock: the first request after a window ended (or after the quota was
// set or changed) opens the next one. Every API request that passes auth
// counts, whatever its answer; a 401 and the admin routes do not. The
// request after the N-th in a window is answered 429 rate_limited with
// Retry-After the seconds left in the window, rounded up, and changes
// nothing; Stats count it like any other answer. The window follows
// Options.Clock, so a test steps through windows without sleeping.
//
// While a quota is on, every API answer, 429s included, carries its
// headers in the style Quota.Headers names (rockety-sim
// -ratelimit-headers), remaining counting this request:
//
//	ietf (the default)  RateLimit: r=<remaining>, t=<seconds to reset>
//	                    RateLimit-Policy: <N>;w=<D in seconds>
//	x                   X-RateLimit-Limit: <N>
//	                    X-RateLimit-Remaining: <remaining>
//	                    X-RateLimit-Reset: <end of the window, Unix seconds>
//	none                nothing but the 429's Retry-After
//
// Seconds are rounded up, so a client that waits them is never early.
//
// # Admin routes
//
// Under AdminPath (/_sim), outside the API and with the same token, a test
// that runs the simulator as another process reads the mutation log and
// the items, and turns churn and faults (the changes lag, the ignored
// filter and soft deletes among them) on and off; Remote is their client.
package sim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BasePath is the path prefix of every API route; a client's base URL is the
// server's URL followed by BasePath.
const BasePath = "/api/v1"

// DefaultPerPage is the page size when a request gives no per_page.
const DefaultPerPage = 100

// MaxPerPage is the largest page size served; larger requests are clamped.
const MaxPerPage = 500

// Op names a change in the mutation log, with the same words as the bridge's
// change events.
const (
	OpCreated = "created"
	OpUpdated = "updated"
	OpDeleted = "deleted"
)

// DefaultResources are the typed resources seeded when Options.Resources is
// empty.
var DefaultResources = []string{"projects", "tasks", "users"}

// ErrNotFound is returned by the Go-side mutators for an item or resource
// that does not exist.
var ErrNotFound = errors.New("sim: not found")

// ErrInvalid is returned when a write is refused, for the same reasons the
// API answers 400 (bad JSON, missing required field, bad resource name).
var ErrInvalid = errors.New("sim: invalid")

// invalidError is a refusal for the reasons a 400 gives: its text is the
// message the client sees, and it matches ErrInvalid as well as its cause.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// invalidf formats like fmt.Errorf, %w included.
func invalidf(format string, args ...any) error {
	return &invalidError{err: fmt.Errorf(format, args...)}
}

// Style selects the envelope of list responses, so the client's support for
// each variant can be exercised.
type Style int

const (
	// StyleDataMeta answers {"data":[...],"meta":{"page","per_page","total","pages"}}.
	StyleDataMeta Style = iota
	// StyleItemsPagination answers {"items":[...],"pagination":{"current_page",
	// "per_page","total_items","total_pages"}}.
	StyleItemsPagination
	// StyleNoMeta answers {"data":[...]} with no metadata at all.
	StyleNoMeta
)

// String returns the name ParseStyle accepts.
func (st Style) String() string {
	switch st {
	case StyleItemsPagination:
		return "items"
	case StyleNoMeta:
		return "nometa"
	default:
		return "data"
	}
}

// ParseStyle turns "data", "items" or "nometa" into a Style.
func ParseStyle(s string) (Style, error) {
	switch s {
	case "data":
		return StyleDataMeta, nil
	case "items":
		return StyleItemsPagination, nil
	case "nometa":
		return StyleNoMeta, nil
	}
	return 0, fmt.Errorf("%w: style %q: want data, items or nometa", ErrInvalid, s)
}

// Options configure a Server. The zero value is a server with no auth, no
// data, no churn and no faults.
type Options struct {
	// Token, when not empty, is required as "Authorization: Bearer <token>".
	Token string
	// Seed makes the seeded data reproducible, byte for byte, and also
	// seeds the random choices of churn and faults.
	Seed int64
	// SeedItems is how many items each of Resources starts with.
	SeedItems int
	// Resources are seeded and churned; empty means DefaultResources. Names
	// other than projects, tasks and users get generic items.
	Resources []string
	// Style is the envelope of list responses.
	Style Style
	// Churn is the rate of background mutations per second across Resources,
	// once Start is called; 0 means none.
	Churn float64
	// Faults are in force from the start; SetFaults changes them later.
	Faults Faults
	// LogLimit, when > 0, keeps only about the last LogLimit mutations, for a
	// long-running server; 0 keeps them all, which is what tests want.
	LogLimit int
	// Clock is the API's clock: the updated_at of writes, the time of logged
	// mutations and the cut-off of Faults.ChangesLag. nil means time.Now. A
	// test sets it to step time instead of sleeping; it may go backwards.
	// It is left out of JSON so that Options, otherwise plain data, still
	// encodes (to log or compare a configuration).
	Clock func() time.Time `json:"-"`
}

// Mutation is one change of an item, from churn, the drift fault, the API or
// the Go-side mutators: the ground truth that the bridge's events are checked
// against.
// Its JSON form is the line format of the admin route /_sim/mutations.
type Mutation struct {
	// Seq numbers mutations from 1 in the order they were applied.
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Resource string    `json:"resource"`
	ID       string    `json:"id"`
	// Op is OpCreated, OpUpdated or OpDeleted. A soft delete is OpDeleted
	// and its restore OpCreated, under the same id.
	Op string `json:"op"`
	// Item is the item after the change; for a delete, its last state (for
	// a soft delete, the item as it is now, deleted_at set).
	Item json.RawMessage `json:"item"`
}

// Server is the simulator: an http.Handler plus Go-side access to its data,
// churn, faults and statistics. All methods are safe for concurrent use.
type Server struct {
	tokenHash [sha256.Size]byte
	hasToken  bool
	style     Style
	churned   []string
	logLimit  int
	clock     func() time.Time

	// mu guards the data, the log and rnd. Reads of pages take it shared;
	// every mutation takes it exclusively so the log order is the order in
	// which changes became visible.
	mu    sync.RWMutex
	colls map[string]*collection
	rnd   *rand.Rand
	log   []Mutation
	seq   uint64

	faultMu  sync.Mutex
	faults   Faults
	failLeft int
	faultRnd *rand.Rand
	quota    quotaState

	statsMu sync.Mutex
	stats   Stats

	churnBits atomic.Uint64
	churnWake chan struct{}
	runMu     sync.Mutex
	started   bool
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
}

var resourceName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

const maxResourceName = 64

func validResource(name string) bool {
	return len(name) <= maxResourceName && resourceName.MatchString(name)
}

// New builds a server and seeds its data. It starts no goroutine: call Start
// for churn, and Close when done.
func New(opts Options) (*Server, error) {
	resources := opts.Resources
	if len(resources) == 0 {
		resources = DefaultResources
	}
	seen := map[string]bool{}
	for _, r := range resources {
		if !validResource(r) {
			return nil, fmt.Errorf("%w: resource name %q: want [a-z][a-z0-9_-]*", ErrInvalid, r)
		}
		if seen[r] {
			return nil, fmt.Errorf("%w: resource %q listed twice", ErrInvalid, r)
		}
		seen[r] = true
	}
	if opts.SeedItems < 0 {
		return nil, fmt.Errorf("%w: negative SeedItems %d", ErrInvalid, opts.SeedItems)
	}
	if !validChurn(opts.Churn) {
		return nil, fmt.Errorf("%w: churn rate %g", ErrInvalid, opts.Churn)
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		hasToken:  opts.Token != "",
		tokenHash: sha256.Sum256([]byte("Bearer " + opts.Token)),
		style:     opts.Style,
		churned:   slices.Clone(resources),
		logLimit:  opts.LogLimit,
		clock:     opts.Clock,
		colls:     make(map[string]*collection, len(resources)),
		rnd:       rand.New(rand.NewPCG(uint64(opts.Seed), 0x6368_7572_6e)),
		faultRnd:  rand.New(rand.NewPCG(uint64(opts.Seed), 0x6661_756c_74)),
		churnWake: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.setFaultsLocked(opts.Faults)
	s.churnBits.Store(floatBits(opts.Churn))
	s.stats = newStats()
	for _, r := range resources {
		s.colls[r] = seed(r, opts.Seed, opts.SeedItems, seen)
	}
	return s, nil
}

// seed builds a resource's first n items. Each item draws from its own random
// stream (seed, resource, index), so the work splits across CPUs and the bytes
// stay the same however it is split.
func seed(resource string, seed int64, n int, seeded map[string]bool) *collection {
	k := kindOf(resource)
	c := newCollection(k)
	if n == 0 {
		return c
	}
	c.changes = nil
	recs := make([]record, n)
	c.order = make([]*record, n)
	base := seedKey(seed, resource)
	workers := max(1, min(runtime.GOMAXPROCS(0), n/5000))
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			pcg := rand.NewPCG(0, 0)
			r := rand.New(pcg)
			ref := func(to string) int64 {
				if !seeded[to] {
					return 0
				}
				return 1 + r.Int64N(int64(n))
			}
			// Items are cut from shared arenas: a million small allocations
			// would cost more in time and in memory.
			var arena []byte
			w := objWriter{}
			for i := lo; i < hi; i++ {
				pcg.Seed(base, uint64(i))
				if cap(arena)-len(arena) < 4096 {
					arena = make([]byte, 0, 1<<20)
				}
				id := int64(i + 1)
				created, updated, at := seedTimes(r)
				w.b = arena
				k.build(&w, r, ref, id, created, updated)
				start := len(arena)
				arena = w.b
				recs[i] = record{key: id, id: id, at: at, raw: arena[start:len(arena):len(arena)]}
				c.order[i] = &recs[i]
			}
		})
	}
	wg.Wait()
	for i := range recs {
		c.byID[recs[i].id] = &recs[i]
	}
	c.nextID = int64(n) + 1
	c.tailKey = int64(n) + 1
	return c
}

// now is the time of a runtime write, at microsecond precision so that
// updated_at survives a round trip through RFC 3339 text unchanged.
func (s *Server) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

func stamp(t time.Time) string { return t.Format(time.RFC3339Nano) }

// bumped returns a time strictly after the item's current updated_at, so that
// every update changes the item even when two land in the same microsecond.
func bumped(cur object, t time.Time) time.Time {
	raw, ok := cur.get("updated_at")
	if !ok {
		return t
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return t
	}
	prev, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.After(prev) {
		return t
	}
	return prev.Add(time.Microsecond)
}

func (s *Server) appendLog(resource string, id int64, op string, raw []byte, t time.Time) {
	s.seq++
	s.log = append(s.log, Mutation{
		Seq: s.seq, Time: t, Resource: resource, ID: strconv.FormatInt(id, 10), Op: op, Item: raw,
	})
	if s.logLimit > 0 && len(s.log) >= 2*s.logLimit {
		// Trim in one copy once the log doubles, so appends stay O(1) amortised.
		s.log = slices.Clone(s.log[len(s.log)-s.logLimit:])
	}
}

// collLocked returns the resource's collection, creating a generic one on
// first use when create is set. The caller holds mu (exclusively if create).
func (s *Server) collLocked(resource string, create bool) (*collection, error) {
	if c := s.colls[resource]; c != nil {
		return c, nil
	}
	if !validResource(resource) {
		return nil, fmt.Errorf("resource %q: %w", resource, ErrNotFound)
	}
	if !create {
		return nil, nil
	}
	c := newCollection(kindOf(resource))
	s.colls[resource] = c
	return c, nil
}

func checkRequired(k *kind, obj object, creating bool) error {
	for _, name := range k.required {
		raw, ok := obj.get(name)
		if !ok {
			if creating {
				return invalidf("%s is required", name)
			}
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil || v == "" || string(raw) == "null" {
			return invalidf("%s must be a non-empty string", name)
		}
	}
	return nil
}

// serverFields are owned by the server: a write's values for them are ignored.
var serverFields = []string{"id", "created_at", "updated_at"}

// deletedField marks a soft-deleted item. With Faults.SoftDelete on it is
// owned by the server too, so that only a DELETE deletes and only a restore
// restores: a write that set it would change what the log calls the item.
const deletedField = "deleted_at"

// ownedField reports whether a write's value for key is ignored.
func ownedField(key string, soft bool) bool {
	return slices.Contains(serverFields, key) || soft && key == deletedField
}

// softDelete reports whether a DELETE keeps the item, as Faults.SoftDelete.
func (s *Server) softDelete() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults.SoftDelete
}

// restoring reports whether a PUT's body asks to restore a soft-deleted item.
func restoring(fields object) bool {
	v, ok := fields.get(deletedField)
	return ok && string(v) == "null"
}
func (s *Server) createLocked(resource string, body object, t time.Time) (*record, error) {
	if !validResource(resource) {
		return nil, invalidf("resource name %q: want [a-z][a-z0-9_-]*", resource)
	}
	c, err := s.collLocked(resource, true)
	if err != nil {
		return nil, err
	}
	if err := checkRequired(c.kind, body, true); err != nil {
		return nil, err
	}
	id := c.newID()
	soft := s.softDelete()
	obj := make(object, 0, len(body)+3)
	obj = append(obj, field{"id", json.RawMessage(strconv.FormatInt(id, 10))})
	for _, f := range body {
		if !ownedField(f.key, soft) {
			obj = append(obj, f)
		}
	}
	ts := appendString(nil, stamp(t))
	obj = append(obj, field{"created_at", ts}, field{"updated_at", ts})
	rec := &record{id: id, at: t.UnixMicro(), raw: obj.marshal()}
	c.appendRec(rec)
	s.appendLog(resource, id, OpCreated, rec.raw, t)
	return rec, nil
}

// writableLocked returns the item a write may change: a soft-deleted item
// is missing to every write but a restore.
func (s *Server) writableLocked(resource, id string, restore bool) (*collection, *record, error) {
	c, err := s.collLocked(resource, false)
	if err != nil {
		return nil, nil, err
	}
	var rec *record
	if c != nil {
		rec = c.get(id)
	}
	if rec == nil || rec.softDeleted() && !restore {
		return nil, nil, fmt.Errorf("%s %s: %w", resource, id, ErrNotFound)
	}
	return c, rec, nil
}

// updateLocked merges fields into an item; for a soft-deleted item whose
// fields set deleted_at to null, it is the restore, logged OpCreated.
func (s *Server) updateLocked(resource, id string, fields object, t time.Time) (*record, error) {
	c, rec, err := s.writableLocked(resource, id, restoring(fields))
	if err != nil {
		return nil, err
	}
	if err := checkRequired(c.kind, fields, false); err != nil {
		return nil, err
	}
	cur, err := parseObject(rec.raw)
	if err != nil {
		return nil, fmt.Errorf("stored %s %s: %w", resource, id, err)
	}
	restore := rec.softDeleted()
	soft := s.softDelete() || restore
	for _, f := range fields {
		if !ownedField(f.key, soft) {
			cur.set(f.key, f.val)
		}
	}
	op := OpUpdated
	if restore {
		cur.set(deletedField, jsonNull)
		c.restore(rec)
		op = OpCreated
	}
	ts := bumped(cur, t)
	cur.set("updated_at", appendString(nil, stamp(ts)))
	rec.raw = cur.marshal()
	c.retime(rec, ts.UnixMicro())
	s.appendLog(resource, rec.id, op, rec.raw, t)
	return rec, nil
}

// deleteLocked removes an item or, with Faults.SoftDelete, stamps its
// deleted_at and updated_at with the same time and keeps it listed.
func (s *Server) deleteLocked(resource, id string, t time.Time) error {
	c, rec, err := s.writableLocked(resource, id, false)
	if err != nil {
		return err
	}
	if !s.softDelete() {
		c.remove(rec)
		s.appendLog(resource, rec.id, OpDeleted, rec.raw, t)
		return nil
	}
	cur, err := parseObject(rec.raw)
	if err != nil {
		return fmt.Errorf("stored %s %s: %w", resource, id, err)
	}
	ts := bumped(cur, t)
	stamped := appendString(nil, stamp(ts))
	cur.set(deletedField, stamped)
	cur.set("updated_at", stamped)
	rec.raw = cur.marshal()
	c.softDelete(rec)
	c.retime(rec, ts.UnixMicro())
	s.appendLog(resource, rec.id, OpDeleted, rec.raw, t)
	return nil
}

// generateLocked adds a generated item, at the end or (for drift) the front.
func (s *Server) generateLocked(resource string, front bool, t time.Time) *record {
	c, _ := s.collLocked(resource, true)
	id := c.newID()
	ts := stamp(t)
	var w objWriter
	c.kind.build(&w, s.rnd, s.refLocked, id, ts, ts)
	rec := &record{id: id, at: t.UnixMicro(), raw: w.b}
	if front {
		c.prependRec(rec)
	} else {
		c.appendRec(rec)
	}
	s.appendLog(resource, id, OpCreated, rec.raw, t)
	return rec
}

// refLocked picks a live item of another resource to refer to, so churned
// items point at something that exists when they are made.
func (s *Server) refLocked(resource string) int64 {
	c := s.colls[resource]
	if c == nil || len(c.order) == 0 {
		return 0
	}
	return c.order[s.rnd.IntN(len(c.order))].id
}

func mapObject(m map[string]any) (object, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding fields: %w", ErrInvalid, err)
	}
	return parseObject(b)
}

// Create adds an item as POST would and returns its new id. Any id in obj is
// ignored. The error matches ErrInvalid for a missing required field or a bad
// resource name.
func (s *Server) Create(resource string, obj map[string]any) (string, error) {
	body, err := mapObject(obj)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", resource, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.createLocked(resource, body, s.now())
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", resource, err)
	}
	return strconv.FormatInt(rec.id, 10), nil
}

// Update merges fields into an item as PUT would (nil sets a field to null)
// and bumps updated_at; for a soft-deleted item, {"deleted_at": nil} restores
// it. The error matches ErrNotFound or ErrInvalid.
func (s *Server) Update(resource, id string, fields map[string]any) error {
	body, err := mapObject(fields)
	if err != nil {
		return fmt.Errorf("updating %s %s: %w", resource, id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.updateLocked(resource, id, body, s.now()); err != nil {
		return fmt.Errorf("updating %s %s: %w", resource, id, err)
	}
	return nil
}

// Delete removes an item as DELETE would, or soft-deletes it with
// Faults.SoftDelete. The error matches ErrNotFound, also for an item that is
// soft-deleted already.
func (s *Server) Delete(resource, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deleteLocked(resource, id, s.now()); err != nil {
		return fmt.Errorf("deleting %s %s: %w", resource, id, err)
	}
	return nil
}

// Get returns a copy of an item's JSON as the API serves it; a soft-deleted
// item is there, with its deleted_at.
func (s *Server) Get(resource, id string) (json.RawMessage, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.colls[resource]
	if c == nil {
		return nil, false
	}
	rec := c.get(id)
	if rec == nil {
		return nil, false
	}
	return slices.Clone(rec.raw), true
}

// Count returns how many items a resource lists now, soft-deleted ones
// included.
func (s *Server) Count(resource string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.colls[resource]; c != nil {
		return len(c.order)
	}
	return 0
}

// IDs returns a resource's ids in list order.
func (s *Server) IDs(resource string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.colls[resource]
	if c == nil {
		return nil
	}
	ids := make([]string, len(c.order))
	for i, rec := range c.order {
		ids[i] = strconv.FormatInt(rec.id, 10)
	}
	return ids
}

// Resources returns the names of the resources that exist, sorted: the seeded
// ones and those created by a write since.
func (s *Server) Resources() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.colls))
	for name := range s.colls {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// SetRaw replaces an item's bytes exactly as given, whitespace and key order
// included, so tests can check that a mere re-encoding is not seen as a change.
// raw must be a JSON object whose "id" is the item's id. It is logged as
// OpUpdated only when its canonical JSON (sorted keys, no whitespace) differs
// from the item's before, because only then did the item really change.
// Its updated_at, as given, places the item in lists filtered by
// updated_since; without one, the item is in none. A soft-deleted item is
// ErrNotFound, as it is to PUT.
func (s *Server) SetRaw(resource, id string, raw []byte) error {
	obj, err := parseObject(raw)
	if err != nil {
		return fmt.Errorf("setting %s %s: %w", resource, id, err)
	}
	newCanon, err := canonical(raw)
	if err != nil {
		return fmt.Errorf("setting %s %s: %w: %w", resource, id, ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.colls[resource]
	var rec *record
	if c != nil {
		rec = c.get(id)
	}
	if rec == nil || rec.softDeleted() {
		return fmt.Errorf("setting %s %s: %w", resource, id, ErrNotFound)
	}
	if v, ok := obj.get("id"); !ok || string(v) != strconv.FormatInt(rec.id, 10) {
		return fmt.Errorf("setting %s %s: %w", resource, id, invalidf("raw id must be %d", rec.id))
	}
	oldCanon, err := canonical(rec.raw)
	if err != nil {
		return fmt.Errorf("setting %s %s: stored item: %w", resource, id, err)
	}
	rec.raw = slices.Clone(raw)
	c.retime(rec, itemTime(obj))
	if string(oldCanon) != string(newCanon) {
		s.appendLog(resource, rec.id, OpUpdated, rec.raw, s.now())
	}
	return nil
}

// Mutations returns every logged mutation (the last ones only, if
// Options.LogLimit is set), oldest first.
func (s *Server) Mutations() []Mutation { return s.MutationsSince(0) }

// MutationsSince returns the logged mutations with Seq > seq, oldest first.
// Each Item is a copy the caller may keep or change.
func (s *Server) MutationsSince(seq uint64) []Mutation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	log := s.keptLocked()
	i := sort.Search(len(log), func(i int) bool { return log[i].Seq > seq })
	out := slices.Clone(log[i:])
	for j := range out {
		out[j].Item = slices.Clone(out[j].Item)
	}
	return out
}

// LastSeq returns the Seq of the latest mutation, 0 if none: a test reads it
// before acting and then asks MutationsSince for what its action caused.
func (s *Server) LastSeq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

func (s *Server) authorized(header string) bool {
	if !s.hasToken {
		return true
	}
	// Comparing fixed-size hashes keeps the time independent of the token's
	// length as well as its content.
	got := sha256.Sum256([]byte(header))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}
