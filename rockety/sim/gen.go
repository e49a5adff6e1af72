package sim

import (
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// seedBase is the "now" of seeded data. A fixed instant rather than time.Now
// is what makes one seed give byte-identical data on every run.
var seedBase = time.Date(2025, time.June, 2, 9, 0, 0, 0, time.UTC)

// seedSpan is how far back seeded items were created.
const seedSpan = 400 * 24 * time.Hour

var (
	projectStatuses = []string{"active", "active", "active", "on_hold", "completed", "archived"}
	taskStatuses    = []string{"todo", "todo", "in_progress", "in_progress", "in_review", "blocked", "done", "done"}
	priorities      = []string{"low", "medium", "medium", "high", "urgent"}
	roles           = []string{"admin", "member", "member", "member", "member", "viewer", "guest"}
	tagWords        = []string{"backend", "frontend", "api", "bug", "customer", "design", "docs", "infra", "mobile", "perf", "security", "ux", "billing", "release"}
	colors          = []string{"red", "orange", "amber", "green", "teal", "blue", "indigo", "violet", "grey"}
	adjectives      = []string{"Orbital", "Lunar", "Solar", "Rapid", "Silent", "Crimson", "Polar", "Quantum", "Northern", "Bright", "Hidden", "Golden", "Iron", "Stellar", "Blue"}
	nouns           = []string{"Falcon", "Harbor", "Beacon", "Atlas", "Comet", "Summit", "Engine", "Bridge", "Orbit", "Voyager", "Pioneer", "Lighthouse", "Compass", "Nebula", "Rocket"}
	verbs           = []string{"Review", "Fix", "Design", "Implement", "Document", "Test", "Migrate", "Refactor", "Deploy", "Investigate", "Update", "Plan", "Benchmark", "Clean up"}
	objects         = []string{"login flow", "billing page", "search index", "onboarding emails", "API rate limits", "dashboard charts", "release notes", "mobile layout", "export to CSV", "audit log", "payment retries", "status page", "user invitations", "dark mode", "webhook settings"}
	sentences       = []string{
		"Customers asked for this in the last survey.",
		"Blocked until the API review is done.",
		"Keep the scope small for the first release.",
		"Check the numbers with finance before launch.",
		"Needs a design review and a short write-up.",
		"Follow up on the incident from last week.",
		"Coordinate with support on the rollout.",
		"Measure the impact on page load time.",
		"Split into smaller tasks if it grows.",
		"Align with the roadmap for next quarter.",
		"Add tests for the edge cases we found.",
		"Document the decision in the wiki.",
	}
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Alan", "Katherine", "Dennis", "Barbara", "Ken", "Frances", "Edsger", "Radia", "Guido", "Hedy", "Tim", "Sophie", "Yuki", "Amara", "Mateo", "Priya"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Johnson", "Ritchie", "Liskov", "Thompson", "Allen", "Dijkstra", "Perlman", "Rossum", "Lamarr", "Berners-Lee", "Wilson", "Tanaka", "Okafor", "Garcia", "Patel"}
)

// refs picks the id an item refers to in another resource, or 0 for none.
type refs func(resource string) int64

// kind says how the items of one resource look: which fields a write must
// carry, how to make a new item, and which fields churn changes.
type kind struct {
	required []string
	// build writes a whole item with the given id and timestamps.
	build func(w *objWriter, r *rand.Rand, ref refs, id int64, created, updated string)
	// mutable lists the fields churn may change, with a generator of a new
	// value for each.
	mutable []string
	value   func(r *rand.Rand, ref refs, field string, id int64) any
}

func pick[T any](r *rand.Rand, v []T) T { return v[r.IntN(len(v))] }

// sentence makes a description of n sentences.
func sentence(r *rand.Rand, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = pick(r, sentences)
	}
	return strings.Join(parts, " ")
}

func tags(r *rand.Rand) []string {
	n := r.IntN(4)
	out := make([]string, 0, n)
	for len(out) < n {
		t := pick(r, tagWords)
		dup := false
		for _, have := range out {
			dup = dup || have == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

func dueDate(r *rand.Rand) string {
	return seedBase.AddDate(0, 0, r.IntN(240)-60).Format(time.DateOnly)
}

func projectName(r *rand.Rand) string { return pick(r, adjectives) + " " + pick(r, nouns) }

func taskTitle(r *rand.Rand) string { return pick(r, verbs) + " " + pick(r, objects) }

func personName(r *rand.Rand) (first, last string) { return pick(r, firstNames), pick(r, lastNames) }

func email(first, last string, id int64) string {
	local := strings.ToLower(first + "." + strings.ReplaceAll(last, "-", ""))
	return local + strconv.FormatInt(id, 10) + "@example.com"
}

var projectKind = kind{
	required: []string{"name"},
	build: func(w *objWriter, r *rand.Rand, ref refs, id int64, created, updated string) {
		w.begin()
		w.int("id", id)
		w.str("name", projectName(r))
		w.str("description", sentence(r, 1+r.IntN(2)))
		w.str("status", pick(r, projectStatuses))
		w.ref("owner_id", ref("users"))
		w.str("created_at", created)
		w.str("updated_at", updated)
		w.end()
	},
	mutable: []string{"name", "description", "status", "owner_id"},
	value: func(r *rand.Rand, ref refs, field string, _ int64) any {
		switch field {
		case "name":
			return projectName(r)
		case "description":
			return sentence(r, 1+r.IntN(2))
		case "status":
			return pick(r, projectStatuses)
		default:
			return refValue(ref("users"))
		}
	},
}

var taskKind = kind{
	required: []string{"title"},
	build: func(w *objWriter, r *rand.Rand, ref refs, id int64, created, updated string) {
		w.begin()
		w.int("id", id)
		w.ref("project_id", ref("projects"))
		w.str("title", taskTitle(r))
		w.str("description", sentence(r, 1+r.IntN(3)))
		w.str("status", pick(r, taskStatuses))
		w.str("priority", pick(r, priorities))
		if r.IntN(7) == 0 {
			w.null("assignee_id")
		} else {
			w.ref("assignee_id", ref("users"))
		}
		if r.IntN(5) == 0 {
			w.null("due_date")
		} else {
			w.str("due_date", dueDate(r))
		}
		w.strs("tags", tags(r))
		w.str("created_at", created)
		w.str("updated_at", updated)
		w.end()
	},
	mutable: []string{"title", "description", "status", "priority", "assignee_id", "due_date", "tags"},
	value: func(r *rand.Rand, ref refs, field string, _ int64) any {
		switch field {
		case "title":
			return taskTitle(r)
		case "description":
			return sentence(r, 1+r.IntN(3))
		case "status":
			return pick(r, taskStatuses)
		case "priority":
			return pick(r, priorities)
		case "assignee_id":
			return refValue(ref("users"))
		case "due_date":
			return dueDate(r)
		default:
			return tags(r)
		}
	},
}

var userKind = kind{
	required: []string{"name", "email"},
	build: func(w *objWriter, r *rand.Rand, _ refs, id int64, created, updated string) {
		first, last := personName(r)
		w.begin()
		w.int("id", id)
		w.str("name", first+" "+last)
		w.str("email", email(first, last, id))
		w.str("role", pick(r, roles))
		w.bool("active", r.IntN(10) != 0)
		w.str("created_at", created)
		w.str("updated_at", updated)
		w.end()
	},
	mutable: []string{"name", "email", "role", "active"},
	value: func(r *rand.Rand, _ refs, field string, id int64) any {
		switch field {
		case "name":
			first, last := personName(r)
			return first + " " + last
		case "email":
			first, last := personName(r)
			return email(first, last, id)
		case "role":
			return pick(r, roles)
		default:
			return r.IntN(10) != 0
		}
	},
}

var genericKind = kind{
	build: func(w *objWriter, r *rand.Rand, _ refs, id int64, created, updated string) {
		w.begin()
		w.int("id", id)
		w.str("name", genericName(r, id))
		w.raw("attributes", attributes(r))
		w.str("created_at", created)
		w.str("updated_at", updated)
		w.end()
	},
	mutable: []string{"name", "attributes"},
	value: func(r *rand.Rand, _ refs, field string, id int64) any {
		if field == "name" {
			return genericName(r, id)
		}
		return json.RawMessage(attributes(r))
	},
}

func genericName(r *rand.Rand, id int64) string {
	return strings.ToLower(pick(r, adjectives)+"-"+pick(r, nouns)) + "-" + strconv.FormatInt(id, 10)
}

func attributes(r *rand.Rand) []byte {
	var w objWriter
	w.begin()
	w.str("color", pick(r, colors))
	w.int("size", int64(1+r.IntN(10)))
	w.strs("labels", tags(r))
	w.end()
	return w.b
}

func refValue(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func kindOf(resource string) *kind {
	switch resource {
	case "projects":
		return &projectKind
	case "tasks":
		return &taskKind
	case "users":
		return &userKind
	default:
		return &genericKind
	}
}

// seedTimes gives a seeded item's created_at and updated_at, both before
// seedBase and in order, and updated_at in microseconds for the change index.
func seedTimes(r *rand.Rand) (created, updated string, at int64) {
	c := seedBase.Add(-time.Duration(r.Int64N(int64(seedSpan/time.Second))) * time.Second)
	u := c.Add(time.Duration(r.Int64N(int64(seedBase.Sub(c)/time.Second)+1)) * time.Second)
	return c.Format(time.RFC3339), u.Format(time.RFC3339), u.UnixMicro()
}

// seedKey derives the random stream of one resource from the seed and the
// resource's name, so adding a resource to the list leaves the others' data
// unchanged.
func seedKey(seed int64, resource string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(resource))
	return h.Sum64() ^ uint64(seed)
}
