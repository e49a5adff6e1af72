package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AdminPath is the path prefix of the admin routes, outside BasePath so no
// client of the API can mistake them for a resource. They let a test that
// runs the simulator in another process read the ground truth and steer the
// simulator, with the same bearer token as the API:
//
//	GET /_sim/seq                           {"last_seq":N,"oldest_seq":F}
//	GET /_sim/mutations?since=S&limit=L     the log after S, JSON lines
//	GET /_sim/items/<resource>              the items in list order, JSON lines
//	GET /_sim/churn, PUT /_sim/churn        {"rate":R}; PUT answers {"rate","last_seq"}
//	GET /_sim/faults, PUT /_sim/faults      the faults in force (see Faults.MarshalJSON)
//	GET /_sim/stats                         {"total","by_method","by_status"}
//
// oldest_seq is the Seq of the oldest mutation still kept (Options.LogLimit),
// or last_seq+1 when none is. A mutations line is a Mutation as JSON; the
// answer streams, so a log of millions of mutations is read in one request,
// and limit (0, the default: no limit) pages it instead. since older than
// the kept log answers 410 with code log_trimmed: the answer would miss
// mutations. The items and mutations answers carry the header
// Rockety-Sim-Last-Seq: the log position they are consistent with (for
// items, exactly: the list and the position are read at one instant).
//
// Admin requests get no injected latency or fault, do not count against
// Faults.Quota and are not counted in Stats.
const AdminPath = "/_sim"

// LastSeqHeader names the log position an admin answer is consistent with.
const LastSeqHeader = "Rockety-Sim-Last-Seq"

// adminChunk is how many log entries or items are copied out under the
// read lock at a time while streaming, so churn never waits long.
const adminChunk = 2000

// SeqInfo is the answer of GET /_sim/seq.
type SeqInfo struct {
	LastSeq   uint64 `json:"last_seq"`
	OldestSeq uint64 `json:"oldest_seq"`
}

// ChurnInfo is the body and answer of /_sim/churn; LastSeq is set in the
// answer of a PUT: the log position when the new rate took hold.
type ChurnInfo struct {
	Rate    float64 `json:"rate"`
	LastSeq uint64  `json:"last_seq,omitempty"`
}

// StatsInfo is the answer of GET /_sim/stats: a part of Stats that JSON can
// carry.
type StatsInfo struct {
	Total    int            `json:"total"`
	ByMethod map[string]int `json:"by_method"`
	ByStatus map[string]int `json:"by_status"`
}

// keptLocked returns the part of the log that is kept. The caller holds mu.
func (s *Server) keptLocked() []Mutation {
	log := s.log
	if s.logLimit > 0 && len(log) > s.logLimit {
		log = log[len(log)-s.logLimit:]
	}
	return log
}

// seqInfo returns the log's bounds.
func (s *Server) seqInfo() SeqInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	kept := s.keptLocked()
	oldest := s.seq + 1
	if len(kept) > 0 {
		oldest = kept[0].Seq
	}
	return SeqInfo{LastSeq: s.seq, OldestSeq: oldest}
}

// mutationChunk copies out up to n kept mutations with Seq > after; the
// items are shared, which is safe because logged bytes are never modified.
func (s *Server) mutationChunk(after uint64, n int) []Mutation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	kept := s.keptLocked()
	i := sort.Search(len(kept), func(i int) bool { return kept[i].Seq > after })
	return slices.Clone(kept[i:min(len(kept), i+n)])
}

// serveAdmin answers a request under AdminPath; auth is checked already.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	route := strings.TrimPrefix(r.URL.Path, AdminPath)
	resource, isItems := strings.CutPrefix(route, "/items/")
	method := func(allowed ...string) bool {
		if slices.Contains(allowed, r.Method) {
			return true
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		adminFail(w, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path)
		return false
	}
	switch {
	case route == "/seq":
		if method(http.MethodGet) {
			adminJSON(w, http.StatusOK, s.seqInfo())
		}
	case route == "/mutations":
		if method(http.MethodGet) {
			s.serveMutations(w, r)
		}
	case isItems && validResource(resource):
		if method(http.MethodGet) {
			s.serveItems(w, resource)
		}
	case route == "/churn":
		if method(http.MethodGet, http.MethodPut) {
			s.serveChurn(w, r)
		}
	case route == "/faults":
		if method(http.MethodGet, http.MethodPut) {
			s.serveFaults(w, r)
		}
	case route == "/stats":
		if method(http.MethodGet) {
			st := s.Stats()
			info := StatsInfo{Total: st.Total, ByMethod: st.ByMethod, ByStatus: map[string]int{}}
			for code, n := range st.ByStatus {
				info.ByStatus[strconv.Itoa(code)] = n
			}
			adminJSON(w, http.StatusOK, info)
		}
	default:
		adminFail(w, http.StatusNotFound, "no such admin route: "+r.URL.Path)
	}
}

func (s *Server) serveMutations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since uint64
	limit := 0
	var err error
	if q.Has("since") {
		if since, err = strconv.ParseUint(q.Get("since"), 10, 64); err != nil {
			adminFail(w, http.StatusBadRequest, fmt.Sprintf("since must be a whole number >= 0, got %q", q.Get("since")))
			return
		}
	}
	if q.Has("limit") {
		if limit, err = strconv.Atoi(q.Get("limit")); err != nil || limit < 0 {
			adminFail(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number >= 0, got %q", q.Get("limit")))
			return
		}
	}
	info := s.seqInfo()
	if since+1 < info.OldestSeq {
		adminFail(w, http.StatusGone, fmt.Sprintf("the log keeps mutations from %d on; since %d would miss some (raise the log limit)", info.OldestSeq, since))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set(LastSeqHeader, strconv.FormatUint(info.LastSeq, 10))
	w.WriteHeader(http.StatusOK)
	// Up to the position announced in the header, so the answer and its
	// header agree even while churn goes on.
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	sent := 0
	for since < info.LastSeq && (limit == 0 || sent < limit) {
		n := adminChunk
		if limit > 0 {
			n = min(n, limit-sent)
		}
		chunk := s.mutationChunk(since, n)
		if len(chunk) == 0 {
			return
		}
		for _, m := range chunk {
			if m.Seq > info.LastSeq {
				return
			}
			if err := enc.Encode(m); err != nil {
				return // the client went away
			}
			since = m.Seq
			sent++
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func (s *Server) serveItems(w http.ResponseWriter, resource string) {
	s.mu.RLock()
	var raws [][]byte
	if c := s.colls[resource]; c != nil {
		raws = make([][]byte, len(c.order))
		for i, rec := range c.order {
			raws[i] = rec.raw // never modified in place; safe to use unlocked
		}
	}
	last := s.seq
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set(LastSeqHeader, strconv.FormatUint(last, 10))
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	for i, raw := range raws {
		// One item per line: an item set with SetRaw may hold newlines.
		if err := json.Compact(&buf, raw); err != nil {
			buf.Write(raw)
		}
		buf.WriteByte('\n')
		if buf.Len() >= 64<<10 || i == len(raws)-1 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			buf.Reset()
		}
	}
}

func (s *Server) serveChurn(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		adminJSON(w, http.StatusOK, ChurnInfo{Rate: s.Churn()})
		return
	}
	var in struct {
		Rate *float64 `json:"rate"`
	}
	if err := decodeStrict(w, r, &in); err != nil || in.Rate == nil {
		adminFail(w, http.StatusBadRequest, `want {"rate": mutations per second}`)
		return
	}
	if err := s.SetChurn(*in.Rate); err != nil {
		adminFail(w, http.StatusBadRequest, err.Error())
		return
	}
	adminJSON(w, http.StatusOK, ChurnInfo{Rate: *in.Rate, LastSeq: s.LastSeq()})
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		var f Faults
		if err := decodeStrict(w, r, &f); err != nil {
			adminFail(w, http.StatusBadRequest, "faults: "+err.Error())
			return
		}
		if err := s.SetFaults(f); err != nil {
			adminFail(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	adminJSON(w, http.StatusOK, s.Faults())
}

func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		adminFail(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func adminFail(w http.ResponseWriter, status int, msg string) {
	code := errorCode(status)
	if status == http.StatusGone {
		code = "log_trimmed"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(errorBody(code, msg), '\n'))
}

// faultsJSON is the JSON form of Faults, with the flag names of
// rockety-sim in snake case and durations as Go duration text ("250ms").
type faultsJSON struct {
	Latency          string        `json:"latency,omitempty"`
	ErrorRate        float64       `json:"error_rate,omitempty"`
	RateLimitRate    float64       `json:"rate_limit_rate,omitempty"`
	RetryAfter       string        `json:"retry_after,omitempty"`
	FailPage         *failPageJSON `json:"fail_page,omitempty"`
	TruncateRate     float64       `json:"truncate_rate,omitempty"`
	HTMLRate         float64       `json:"html_rate,omitempty"`
	PagesUnderreport int           `json:"pages_underreport,omitempty"`
	RepeatPageRate   float64       `json:"repeat_page_rate,omitempty"`
	DriftInserts     int           `json:"drift,omitempty"`
	ChangesLag       string        `json:"changes_lag,omitempty"`
	IgnoreChanged    bool          `json:"ignore_changed_since,omitempty"`
	SoftDelete       bool          `json:"soft_delete,omitempty"`
	Quota            *quotaJSON    `json:"quota,omitempty"`
}

type quotaJSON struct {
	Limit   int          `json:"limit"`
	Window  string       `json:"window,omitempty"`
	Headers QuotaHeaders `json:"headers,omitempty"`
}

type failPageJSON struct {
	Resource string `json:"resource"`
	Page     int    `json:"page"`
	Status   int    `json:"status,omitempty"`
	Times    int    `json:"times,omitempty"`
}

// MarshalJSON encodes the faults as the admin route /_sim/faults shows
// them: {"latency":"80ms","error_rate":0.1,"rate_limit_rate":0.2,
// "retry_after":"1s","fail_page":{"resource":"tasks","page":2,"status":503,
// "times":1},"truncate_rate":0,"html_rate":0,"pages_underreport":0,
// "repeat_page_rate":0,"drift":0,"changes_lag":"2s",
// "ignore_changed_since":false,"soft_delete":true,
// "quota":{"limit":100,"window":"10s","headers":"ietf"}}, zero values left
// out.
func (f Faults) MarshalJSON() ([]byte, error) {
	out := faultsJSON{
		ErrorRate: f.ErrorRate, RateLimitRate: f.RateLimitRate, TruncateRate: f.TruncateRate, HTMLRate: f.HTMLRate,
		PagesUnderreport: f.PagesUnderreport, RepeatPageRate: f.RepeatPageRate, DriftInserts: f.DriftInserts,
		IgnoreChanged: f.IgnoreChangedSince, SoftDelete: f.SoftDelete,
	}
	if f.Latency != 0 {
		out.Latency = f.Latency.String()
	}
	if f.ChangesLag != 0 {
		out.ChangesLag = f.ChangesLag.String()
	}
	if f.RetryAfter != 0 {
		out.RetryAfter = f.RetryAfter.String()
	}
	if fp := f.FailPage; fp.Resource != "" {
		out.FailPage = &failPageJSON{Resource: fp.Resource, Page: fp.Page, Status: fp.Status, Times: fp.Times}
	}
	if q := f.Quota; q != (Quota{}) {
		out.Quota = &quotaJSON{Limit: q.Limit, Headers: q.Headers}
		if q.Window != 0 {
			out.Quota.Window = q.Window.String()
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes the form MarshalJSON writes; an unknown key or a
// duration that does not parse is an error. Keys left out are zero.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var in faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	out := Faults{
		ErrorRate: in.ErrorRate, RateLimitRate: in.RateLimitRate, TruncateRate: in.TruncateRate, HTMLRate: in.HTMLRate,
		PagesUnderreport: in.PagesUnderreport, RepeatPageRate: in.RepeatPageRate, DriftInserts: in.DriftInserts,
		IgnoreChangedSince: in.IgnoreChanged, SoftDelete: in.SoftDelete,
	}
	var quotaWindow string
	if q := in.Quota; q != nil {
		out.Quota = Quota{Limit: q.Limit, Headers: q.Headers}
		quotaWindow = q.Window
	}
	for _, d := range []struct {
		name string
		text string
		dst  *time.Duration
	}{
		{"latency", in.Latency, &out.Latency}, {"retry_after", in.RetryAfter, &out.RetryAfter},
		{"changes_lag", in.ChangesLag, &out.ChangesLag}, {"quota window", quotaWindow, &out.Quota.Window},
	} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	if fp := in.FailPage; fp != nil {
		out.FailPage = FailPage{Resource: fp.Resource, Page: fp.Page, Status: fp.Status, Times: fp.Times}
	}
	*f = out
	return nil
}
