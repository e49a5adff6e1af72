package sim

import "maps"

// Route is a request's method and URL path (no query), a key of Stats.ByRoute.
type Route struct {
	Method string
	Path   string
}

// PageRequest is a resource and a page number, a key of Stats.Pages.
type PageRequest struct {
	Resource string
	Page     int
}

// Stats counts the requests that got an answer since the server started or
// ResetStats was called. A request is counted before its response is written,
// so a client that has its answer can rely on the count. Requests whose client
// gave up during the injected latency are not counted.
type Stats struct {
	Total    int
	ByMethod map[string]int
	ByStatus map[int]int
	ByRoute  map[Route]int
	// Pages counts list requests (GET /api/v1/<resource>) by the page they
	// asked for, whatever their answer, including injected failures;
	// requests with an unparsable page are not in it.
	Pages map[PageRequest]int
}

func newStats() Stats {
	return Stats{
		ByMethod: map[string]int{},
		ByStatus: map[int]int{},
		ByRoute:  map[Route]int{},
		Pages:    map[PageRequest]int{},
	}
}

// Stats returns a copy of the request counts.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return Stats{
		Total:    s.stats.Total,
		ByMethod: maps.Clone(s.stats.ByMethod),
		ByStatus: maps.Clone(s.stats.ByStatus),
		ByRoute:  maps.Clone(s.stats.ByRoute),
		Pages:    maps.Clone(s.stats.Pages),
	}
}

// ResetStats sets every request count back to zero.
func (s *Server) ResetStats() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats = newStats()
}

func (s *Server) count(rq *request, status int) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats.Total++
	s.stats.ByMethod[rq.method]++
	s.stats.ByStatus[status]++
	s.stats.ByRoute[Route{rq.method, rq.path}]++
	if rq.listPage > 0 {
		s.stats.Pages[PageRequest{rq.resource, rq.listPage}]++
	}
}
