package sim

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds a write's body; Rockety items are small.
const maxBody = 1 << 20

// request is what routing learnt about an incoming request.
type request struct {
	method   string
	path     string
	query    url.Values
	matched  bool // path is /api/v1/<resource> or /api/v1/<resource>/<id>
	resource string
	id       string
	// listPage is the page of a GET list request with a valid page, else 0;
	// it keys Stats.Pages.
	listPage int
}

func parseRequest(r *http.Request) request {
	rq := request{method: r.Method, path: r.URL.Path}
	rest, ok := strings.CutPrefix(rq.path, BasePath+"/")
	if !ok {
		return rq
	}
	rest = strings.TrimSuffix(rest, "/")
	resource, id, hasID := strings.Cut(rest, "/")
	if !validResource(resource) || (hasID && (id == "" || strings.Contains(id, "/"))) {
		return rq
	}
	rq.matched, rq.resource, rq.id = true, resource, id
	if !hasID && r.Method == http.MethodGet {
		rq.query = r.URL.Query()
		if page, _, err := pageParams(rq.query); err == nil {
			rq.listPage = page
		}
	}
	return rq
}

// pageParams reads page and per_page. An absent value takes its default; a
// present one must be a whole number, and per_page is then clamped rather
// than refused, as many APIs do.
func pageParams(q url.Values) (page, perPage int, err error) {
	page, perPage = 1, DefaultPerPage
	if q.Has("page") {
		page, err = strconv.Atoi(q.Get("page"))
		if err != nil || page < 1 {
			return 0, 0, invalidf("page must be a whole number >= 1, got %q", q.Get("page"))
		}
	}
	if q.Has("per_page") {
		perPage, err = strconv.Atoi(q.Get("per_page"))
		if err != nil {
			return 0, 0, invalidf("per_page must be a whole number, got %q", q.Get("per_page"))
		}
		perPage = max(1, min(perPage, MaxPerPage))
	}
	return page, perPage, nil
}

// bufPool recycles page buffers; at thousands of pages a second, allocating a
// fresh 30 KB buffer each time would keep the garbage collector busy.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps the odd huge response from pinning memory in the pool.
const maxPooledBuf = 4 << 20

// ServeHTTP answers one API request. In order: the injected latency, auth,
// the quota, the random 429/500 faults, routing, then the operation.
// Requests under AdminPath only need auth.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == AdminPath || strings.HasPrefix(r.URL.Path, AdminPath+"/") {
		if !s.authorized(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rockety"`)
			adminFail(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		s.serveAdmin(w, r)
		return
	}
	rq := parseRequest(r)
	if d := s.latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rockety"`)
		s.fail(w, &rq, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	if q := s.takeQuota(); q.on {
		// Set before any answer is written, so every answer carries them.
		q.setHeaders(w.Header())
		if q.refused {
			w.Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(q.resetIn), 10))
			s.fail(w, &rq, http.StatusTooManyRequests, "quota of "+Quota{Limit: q.limit, Window: q.window}.String()+" exceeded")
			return
		}
	}
	if status, retryAfter := s.injected(); status != 0 {
		s.failInjected(w, &rq, status, retryAfter)
		return
	}
	if !rq.matched {
		s.fail(w, &rq, http.StatusNotFound, "no such route: "+rq.path)
		return
	}
	switch {
	case rq.id == "" && r.Method == http.MethodGet:
		s.list(w, &rq)
	case rq.id == "" && r.Method == http.MethodPost:
		s.create(w, r, &rq)
	case rq.id == "":
		w.Header().Set("Allow", "GET, POST")
		s.fail(w, &rq, http.StatusMethodNotAllowed, r.Method+" not allowed on "+rq.path)
	case r.Method == http.MethodGet:
		s.getItem(w, &rq)
	case r.Method == http.MethodPut:
		s.update(w, r, &rq)
	case r.Method == http.MethodDelete:
		s.delete(w, &rq)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		s.fail(w, &rq, http.StatusMethodNotAllowed, r.Method+" not allowed on "+rq.path)
	}
}

// changeFilter is what a list filtered by updated_since shows: the items
// changed at or after since and not after cutoff (math.MaxInt64: no
// cut-off), in microseconds.
type changeFilter struct {
	since, cutoff int64
}

func (s *Server) list(w http.ResponseWriter, rq *request) {
	page, perPage, err := pageParams(rq.query)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err.Error())
		return
	}
	f := s.Faults()
	var filter *changeFilter
	if !f.IgnoreChangedSince {
		since, ok, err := sinceParam(rq.query)
		if err != nil {
			s.fail(w, rq, http.StatusBadRequest, err.Error())
			return
		}
		if ok {
			filter = &changeFilter{since: since, cutoff: math.MaxInt64}
			if f.ChangesLag > 0 {
				filter.cutoff = s.now().Add(-f.ChangesLag).UnixMicro()
			}
			s.indexChanges(rq.resource)
		}
	}
	status, retryAfter, drift := s.failPage(rq.resource, page)
	if status != 0 {
		s.failInjected(w, rq, status, retryAfter)
		return
	}
	if s.chance(f.HTMLRate) {
		s.count(rq, http.StatusBadGateway)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"))
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	served := page
	if page > 1 && s.chance(f.RepeatPageRate) {
		served = page - 1
	}
	s.mu.RLock()
	s.writePageLocked(buf, rq.resource, served, perPage, f.PagesUnderreport, filter)
	s.mu.RUnlock()
	body := buf.Bytes()
	if s.chance(f.TruncateRate) {
		body = body[:len(body)/2]
	}
	// Drift lands before the answer is written, so the client's next request
	// is certain to see the shifted pages.
	if drift > 0 {
		s.mu.Lock()
		t := s.now()
		for range drift {
			s.generateLocked(rq.resource, true, t)
		}
		s.mu.Unlock()
	}
	s.writeJSON(w, rq, http.StatusOK, body)
}

// indexChanges builds a seeded resource's change index before its first
// filtered list, under the exclusive lock that building needs, so that
// pages are then served under the shared one.
func (s *Server) indexChanges(resource string) {
	s.mu.RLock()
	c := s.colls[resource]
	built := c == nil || c.changes != nil
	s.mu.RUnlock()
	if built {
		// A collection made after this check is made with its index.
		return
	}
	s.mu.Lock()
	c.indexChanges()
	s.mu.Unlock()
}

func (s *Server) writePageLocked(buf *bytes.Buffer, resource string, page, perPage, underreport int, filter *changeFilter) {
	var items []*record
	total := 0
	if c := s.colls[resource]; c != nil && filter == nil {
		start, end := c.window(page, perPage)
		items = c.order[start:end]
		total = len(c.order)
	} else if c != nil {
		lo, hi := c.changes.bounds(filter.since, filter.cutoff)
		start, end := window(hi-lo, page, perPage)
		items = c.changes.appendRange(make([]*record, 0, end-start), lo+start, lo+end)
		total = hi - lo
	}
	pages := max((total+perPage-1)/perPage-underreport, 0)

	if s.style == StyleItemsPagination {
		buf.WriteString(`{"items":[`)
	} else {
		buf.WriteString(`{"data":[`)
	}
	for i, rec := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(rec.raw)
	}
	buf.WriteByte(']')
	num := func(key string, n int) {
		buf.WriteString(key)
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(n), 10))
	}
	switch s.style {
	case StyleItemsPagination:
		num(`,"pagination":{"current_page":`, page)
		num(`,"per_page":`, perPage)
		num(`,"total_items":`, total)
		num(`,"total_pages":`, pages)
		buf.WriteByte('}')
	case StyleNoMeta:
	default:
		num(`,"meta":{"page":`, page)
		num(`,"per_page":`, perPage)
		num(`,"total":`, total)
		num(`,"pages":`, pages)
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
}

func (s *Server) getItem(w http.ResponseWriter, rq *request) {
	raw, ok := s.Get(rq.resource, rq.id)
	if !ok {
		s.fail(w, rq, http.StatusNotFound, rq.resource+" "+rq.id+" not found")
		return
	}
	s.writeJSON(w, rq, http.StatusOK, raw)
}

// readObject reads a write's body, answering 400 itself when it is unusable.
func (s *Server) readObject(w http.ResponseWriter, r *http.Request, rq *request) (object, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		msg := "reading body: " + err.Error()
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			msg = "body larger than " + strconv.Itoa(maxBody) + " bytes"
		}
		s.fail(w, rq, http.StatusBadRequest, msg)
		return nil, false
	}
	obj, err := parseObject(body)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return obj, true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, rq *request) {
	obj, ok := s.readObject(w, r, rq)
	if !ok {
		return
	}
	s.mu.Lock()
	rec, err := s.createLocked(rq.resource, obj, s.now())
	var raw []byte
	if err == nil {
		raw = rec.raw
	}
	s.mu.Unlock()
	if err != nil {
		s.failWrite(w, rq, err)
		return
	}
	s.writeJSON(w, rq, http.StatusCreated, raw)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, rq *request) {
	obj, ok := s.readObject(w, r, rq)
	if !ok {
		return
	}
	s.mu.Lock()
	rec, err := s.updateLocked(rq.resource, rq.id, obj, s.now())
	var raw []byte
	if err == nil {
		raw = rec.raw
	}
	s.mu.Unlock()
	if err != nil {
		s.failWrite(w, rq, err)
		return
	}
	s.writeJSON(w, rq, http.StatusOK, raw)
}

func (s *Server) delete(w http.ResponseWriter, rq *request) {
	s.mu.Lock()
	err := s.deleteLocked(rq.resource, rq.id, s.now())
	s.mu.Unlock()
	if err != nil {
		s.failWrite(w, rq, err)
		return
	}
	s.count(rq, http.StatusNoContent)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) failWrite(w http.ResponseWriter, rq *request, err error) {
	if inv, ok := errors.AsType[*invalidError](err); ok {
		s.fail(w, rq, http.StatusBadRequest, inv.Error())
		return
	}
	if errors.Is(err, ErrNotFound) {
		s.fail(w, rq, http.StatusNotFound, rq.resource+" "+rq.id+" not found")
		return
	}
	s.fail(w, rq, http.StatusInternalServerError, err.Error())
}

func (s *Server) failInjected(w http.ResponseWriter, rq *request, status int, retryAfter time.Duration) {
	if status == http.StatusTooManyRequests {
		secs := 0
		if retryAfter > 0 {
			secs = int((retryAfter + time.Second - 1) / time.Second)
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.fail(w, rq, status, "injected fault: rate limit exceeded")
		return
	}
	s.fail(w, rq, status, "injected fault: "+strings.ToLower(http.StatusText(status)))
}

func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusTooManyRequests:
		return "rate_limited"
	}
	if status < 500 {
		return "bad_request"
	}
	return "internal"
}

func (s *Server) fail(w http.ResponseWriter, rq *request, status int, msg string) {
	s.writeJSON(w, rq, status, errorBody(errorCode(status), msg))
}

// errorBody is the API's error answer: {"error":{"code":...,"message":...}}.
func errorBody(code, msg string) []byte {
	b := []byte(`{"error":{"code":`)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return append(b, "}}"...)
}

// writeJSON counts the request before answering, so that a client holding the
// answer always finds its request in Stats.
func (s *Server) writeJSON(w http.ResponseWriter, rq *request, status int, body []byte) {
	s.count(rq, status)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
