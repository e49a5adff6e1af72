package rockety

import (
	"fmt"
	"slices"
)

// cursor decides which pages a traversal fetches and when it ends, and holds
// the guards against listings that never end. It does no I/O: pages are fed
// to accept in page order, and want says whether a page is needed.
//
// With metadata, the last page is the largest the metadata has named so far
// (inserts during a traversal can push items onto a new page). Without it,
// pages are fetched one after another until one is empty or short.
type cursor struct {
	resource string
	perPage  int
	maxPages int
	// granted: the API may answer with smaller pages than perPage (it was
	// asked for its largest); without metadata, page 1's length is then
	// the page size.
	granted bool

	metaMode bool
	lastPage int
	accepted int // the last page accepted, 0 before the first
	done     bool
	prevIDs  []ID
}

func newCursor(resource string, perPage, maxPages int) *cursor {
	return &cursor{resource: resource, perPage: perPage, maxPages: maxPages, lastPage: -1}
}

// want reports whether page n is needed now. Pages are asked for in order; in
// the mode without metadata only the page after the last accepted one can be.
func (c *cursor) want(n int) (bool, error) {
	if c.done {
		return false, nil
	}
	if c.metaMode {
		if n > c.lastPage {
			return false, nil
		}
	} else if n != c.accepted+1 {
		return false, nil
	}
	if n > c.maxPages {
		return false, fmt.Errorf("%w: %s: more than %d pages without an end; the API may be ignoring the page parameter (if the resource really is this large, raise the page limit)",
			ErrPagination, c.resource, c.maxPages)
	}
	return true, nil
}

// accept takes page n, which must follow the page accepted before it.
func (c *cursor) accept(n int, page PageBody) error {
	if n != c.accepted+1 {
		return fmt.Errorf("rockety: internal: page %d accepted after page %d", n, c.accepted)
	}
	count := len(page.Items)
	// Checked before anything is taken from the page, so that the page
	// can be fetched again and fed anew.
	if count > 0 && slices.EqualFunc(page.Items, c.prevIDs, func(it Item, id ID) bool { return it.ID == id }) {
		return repeatedPage{fmt.Sprintf("%s page %d repeats page %d (the same %d ids)", c.resource, n, n-1, count)}
	}
	if n == 1 {
		c.metaMode = page.Meta.Found
	}
	if c.metaMode {
		last := page.Meta.lastPage(c.perPage)
		if page.Meta.Found && n > last && count > 0 {
			return fmt.Errorf("%w: %s page %d has %d items but the metadata says there are only %d pages",
				ErrPagination, c.resource, n, count, last)
		}
		if last > c.lastPage {
			c.lastPage = last
		}
		if c.lastPage > c.maxPages {
			return fmt.Errorf("%w: %s: the metadata says %d pages, more than the limit of %d (raise the page limit or the page size)",
				ErrPagination, c.resource, c.lastPage, c.maxPages)
		}
		c.done = count == 0 || n >= c.lastPage
	} else {
		if n == 1 && c.granted && count > 0 && count < c.perPage {
			c.perPage = count
		}
		c.done = count < c.perPage
	}
	c.prevIDs = c.prevIDs[:0]
	for _, it := range page.Items {
		c.prevIDs = append(c.prevIDs, it.ID)
	}
	c.accepted = n
	return nil
}

// repeatedPage: a page came back with the ids of the page before. A stale
// cache in front of the API does that now and then; an API that ignores
// the page parameter does it every time.
type repeatedPage struct{ what string }

func (e repeatedPage) Error() string {
	return ErrPagination.Error() + ": " + e.what + "; the API seems to ignore the page parameter, or a cache in front of it serves pages from the wrong offset"
}

func (e repeatedPage) Unwrap() error { return ErrPagination }
