package rockety

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// Filter is one query parameter of a list request besides page and
// per_page, such as updated_since=2026-12-01T12:00:00Z.
type Filter struct {
	Param, Value string
}

// Page is one page of a traversal, in page order.
type Page struct {
	Resource string
	Number   int
	Items    []Item
	// Meta is the metadata this page reported; Meta.Found is false when the
	// API sends none.
	Meta Meta
}

// Pages traverses a resource's list endpoint and yields its pages in order.
// Once page 1 has told how many pages there are, later pages are fetched in
// parallel (WithPageConcurrency), and still handed on in page order; at most
// that many pages are held at once. On an error it yields (nil, err) once and
// stops. Breaking out of the loop cancels the requests in flight.
//
// The traversal guards against listings that never end: a page that repeats
// the one before, a page with items beyond the page count its own metadata
// gives, and more pages than the limit (WithMaxPages). Each is an error
// matching ErrPagination.
//
// Filters narrow the list (incremental polling asks for items changed
// since a time); pages are then those of the filtered list.
func (c *Client) Pages(ctx context.Context, resource string, filters ...Filter) iter.Seq2[*Page, error] {
	return func(yield func(*Page, error) bool) {
		if err := checkResource(resource); err != nil {
			yield(nil, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()

		type result struct {
			body PageBody
			err  error
		}
		type inFlight struct {
			number int
			done   chan result
		}
		cur := newCursor(resource, c.pageSize, c.maxPages)
		cur.granted = c.pageSizeGranted
		var queue []inFlight
		next := 1
		for {
			for len(queue) < c.pageConcurrency {
				want, err := cur.want(next)
				if err != nil {
					yield(nil, err)
					return
				}
				if !want {
					break
				}
				f := inFlight{number: next, done: make(chan result, 1)}
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, err := c.FetchPage(ctx, resource, f.number, filters...)
					f.done <- result{body, err}
				}()
				queue = append(queue, f)
				next++
			}
			if len(queue) == 0 {
				return
			}
			f := queue[0]
			queue = queue[1:]
			r := <-f.done
			if r.err == nil {
				r.err = cur.accept(f.number, r.body)
			}
			for try := 1; r.err != nil && fetchAgain(r.err) && try <= pageRefetches; try++ {
				// A 200 whose body is cut off, or a page from the wrong
				// offset, is the answer of one request, not of the API:
				// asked again, the page usually comes whole, and the
				// traversal goes on instead of failing.
				if err := c.pauseBeforeRefetch(ctx, try); err != nil {
					r.err = err
					break
				}
				r.body, r.err = c.FetchPage(ctx, resource, f.number, filters...)
				if r.err == nil {
					r.err = cur.accept(f.number, r.body)
				}
				if r.err != nil && try == pageRefetches {
					r.err = fmt.Errorf("%w (also when fetched %d more times)", r.err, pageRefetches)
				}
			}
			if r.err != nil {
				yield(nil, r.err)
				return
			}
			if !yield(&Page{Resource: resource, Number: f.number, Items: r.body.Items, Meta: r.body.Meta}, nil) || cur.done {
				return
			}
		}
	}
}

// pageRefetches is how many more times a page is asked for when its answer
// does not decode or repeats the page before.
const pageRefetches = 3

// fetchAgain reports whether err is of one answer, which another request
// may not repeat: a body that is not a page (not one too large to read),
// or the page before.
func fetchAgain(err error) bool {
	var undecodable undecodablePage
	var repeated repeatedPage
	return errors.As(err, &undecodable) || errors.As(err, &repeated)
}

// pauseBeforeRefetch waits before the try-th refetch of a page: the
// client's first retry interval, doubled each time, at most its longest.
func (c *Client) pauseBeforeRefetch(ctx context.Context, try int) error {
	wait := min(c.retryInitial<<(try-1), c.retryMax)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
