package rockety

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// pageOf builds a page with ids prefix1..prefixN and the given metadata
// (pages < 0 means no metadata).
func pageOf(prefix string, n, total, pages int) PageBody {
	p := PageBody{Meta: Meta{Page: -1, PerPage: -1, Total: total, Pages: pages}}
	p.Meta.Found = total >= 0 || pages >= 0
	for i := range n {
		p.Items = append(p.Items, Item{ID: ID(fmt.Sprintf("%s%d", prefix, i))})
	}
	return p
}

func TestCursor(t *testing.T) {
	const perPage = 3
	tests := []struct {
		name     string
		maxPages int
		// granted: the page size is the API's (ROCKETY_PAGE_SIZE=max).
		granted bool
		pages   []PageBody
		// fetched is how many pages the traversal takes; wantErr the error
		// at the end, if any.
		fetched int
		wantErr string
	}{
		// Guards first.
		{name: "page repeating the previous one, no metadata", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, -1, -1), pageOf("a", 3, -1, -1)}, fetched: 2,
			wantErr: "page 2 repeats page 1 (the same 3 ids)"},
		{name: "page repeating the previous one, with metadata", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 9, 3), pageOf("a", 3, 9, 3)}, fetched: 2, wantErr: "page 2 repeats page 1"},
		{name: "never-ending pages hit the limit", maxPages: 3,
			pages: []PageBody{pageOf("a", 3, -1, -1), pageOf("b", 3, -1, -1), pageOf("c", 3, -1, -1)}, fetched: 3,
			wantErr: "more than 3 pages without an end"},
		{name: "metadata beyond the limit", maxPages: 3,
			pages: []PageBody{pageOf("a", 3, 30, 10)}, fetched: 1, wantErr: "the metadata says 10 pages, more than the limit of 3"},
		{name: "items beyond the page count the page itself gives", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 9, 3), pageOf("b", 3, 9, 3), pageOf("c", 3, 3, 1)}, fetched: 3,
			wantErr: "page 3 has 3 items but the metadata says there are only 1 pages"},

		{name: "metadata pages", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 7, 3), pageOf("b", 3, 7, 3), pageOf("c", 1, 7, 3)}, fetched: 3},
		{name: "metadata total only", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 6, -1), pageOf("b", 3, 6, -1)}, fetched: 2},
		{name: "empty resource", maxPages: 100, pages: []PageBody{pageOf("a", 0, 0, 0)}, fetched: 1},
		{name: "last page full: no extra request", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 6, 2), pageOf("b", 3, 6, 2)}, fetched: 2},
		{name: "inserts during the traversal add a page", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 6, 2), pageOf("b", 3, 7, 3), pageOf("c", 1, 7, 3)}, fetched: 3},
		{name: "deletes during the traversal end it at an empty page", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, 9, 3), pageOf("b", 0, 3, 1)}, fetched: 2},
		{name: "no metadata: short page ends", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, -1, -1), pageOf("b", 2, -1, -1)}, fetched: 2},
		{name: "no metadata: empty page ends", maxPages: 100,
			pages: []PageBody{pageOf("a", 3, -1, -1), pageOf("b", 0, -1, -1)}, fetched: 2},
		{name: "no metadata: one short page", maxPages: 100, pages: []PageBody{pageOf("a", 1, -1, -1)}, fetched: 1},
		{name: "exactly the limit is fine", maxPages: 2,
			pages: []PageBody{pageOf("a", 3, 6, 2), pageOf("b", 3, 6, 2)}, fetched: 2},

		// The largest page the API grants (asked for 3, granted 2).
		{name: "granted, no metadata: a short first page is the page size", maxPages: 100, granted: true,
			pages: []PageBody{pageOf("a", 2, -1, -1), pageOf("b", 2, -1, -1), pageOf("c", 1, -1, -1)}, fetched: 3},
		{name: "granted, no metadata: ends at an empty page", maxPages: 100, granted: true,
			pages: []PageBody{pageOf("a", 2, -1, -1), pageOf("b", 0, -1, -1)}, fetched: 2},
		{name: "granted, no metadata: a full first page behaves as asked", maxPages: 100, granted: true,
			pages: []PageBody{pageOf("a", 3, -1, -1), pageOf("b", 1, -1, -1)}, fetched: 2},
		{name: "granted, no metadata: empty resource", maxPages: 100, granted: true,
			pages: []PageBody{pageOf("a", 0, -1, -1)}, fetched: 1},
		{name: "granted, with metadata: the total counts", maxPages: 100, granted: true,
			pages: []PageBody{pageOf("a", 2, 3, 2), pageOf("b", 1, 3, 2)}, fetched: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCursor("tasks", perPage, tt.maxPages)
			c.granted = tt.granted
			fetched := 0
			var err error
			for n := 1; ; n++ {
				var want bool
				want, err = c.want(n)
				if err != nil || !want {
					break
				}
				if n > len(tt.pages) {
					t.Fatalf("cursor wants page %d; the test has %d", n, len(tt.pages))
				}
				fetched++
				if err = c.accept(n, tt.pages[n-1]); err != nil {
					break
				}
			}
			if fetched != tt.fetched {
				t.Errorf("fetched %d pages, want %d", fetched, tt.fetched)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrPagination) {
				t.Fatalf("err = %v, want ErrPagination containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCursorWantsPagesAheadOnlyWithMetadata(t *testing.T) {
	c := newCursor("tasks", 3, 100)
	if err := c.accept(1, pageOf("a", 3, 12, 4)); err != nil {
		t.Fatal(err)
	}
	for n := 2; n <= 4; n++ {
		if ok, err := c.want(n); !ok || err != nil {
			t.Errorf("want(%d) = %v, %v; with metadata every page up to the last may be fetched ahead", n, ok, err)
		}
	}
	if ok, _ := c.want(5); ok {
		t.Error("want(5) beyond the last page")
	}

	c = newCursor("tasks", 3, 100)
	if err := c.accept(1, pageOf("a", 3, -1, -1)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.want(3); ok {
		t.Error("want(3) before page 2 without metadata: the end is not known yet")
	}
}

func TestCursorTrustsTheTotalOverAnUnderreportedPageCount(t *testing.T) {
	c := newCursor("tasks", 3, 100)
	// 9 items in pages of 3, but the metadata claims 2 pages.
	for n, p := range []PageBody{pageOf("a", 3, 9, 2), pageOf("b", 3, 9, 2), pageOf("c", 3, 9, 2)} {
		if ok, err := c.want(n + 1); !ok || err != nil {
			t.Fatalf("want(%d) = %v, %v", n+1, ok, err)
		}
		if err := c.accept(n+1, p); err != nil {
			t.Fatalf("page %d: %v", n+1, err)
		}
	}
	if ok, _ := c.want(4); ok || !c.done {
		t.Error("the traversal goes on past the total")
	}
}
