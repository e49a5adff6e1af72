package rockety_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "empty", value: "", wantOK: false},
		{name: "garbage", value: "soon", wantOK: false},
		{name: "negative seconds", value: "-5", wantOK: false},
		{name: "fraction", value: "1.5", wantOK: false},
		{name: "seconds", value: "3", want: 3 * time.Second, wantOK: true},
		{name: "zero", value: "0", want: 0, wantOK: true},
		{name: "padded", value: " 7 ", want: 7 * time.Second, wantOK: true},
		{name: "absurdly large is capped", value: "99999999999999999", want: 24 * time.Hour, wantOK: true},
		{name: "http date", value: "Thu, 26 Nov 2026 12:00:30 GMT", want: 30 * time.Second, wantOK: true},
		{name: "http date in the past", value: "Thu, 26 Nov 2026 11:00:00 GMT", want: 0, wantOK: true},
		{name: "rfc850 date", value: "Thursday, 26-Nov-26 12:01:00 GMT", want: time.Minute, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rockety.ParseRetryAfter(tt.value, now)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestAPIErrorMatching(t *testing.T) {
	sentinels := []error{rockety.ErrUnauthorized, rockety.ErrForbidden, rockety.ErrNotFound,
		rockety.ErrBadRequest, rockety.ErrRateLimited, rockety.ErrTransient}
	tests := []struct {
		status   int
		matches  []error
		inString string
	}{
		{status: 400, matches: []error{rockety.ErrBadRequest}, inString: "400 Bad Request"},
		{status: 401, matches: []error{rockety.ErrUnauthorized}, inString: "check ROCKETY_API_TOKEN"},
		{status: 403, matches: []error{rockety.ErrForbidden}, inString: "permissions"},
		{status: 404, matches: []error{rockety.ErrNotFound}, inString: "ROCKETY_RESOURCES"},
		{status: 409, matches: []error{rockety.ErrBadRequest}},
		{status: 422, matches: []error{rockety.ErrBadRequest}},
		{status: 429, matches: []error{rockety.ErrRateLimited, rockety.ErrTransient}, inString: "ROCKETY_RATE_LIMIT"},
		{status: 500, matches: []error{rockety.ErrTransient}, inString: "it is retried"},
		{status: 502, matches: []error{rockety.ErrTransient}},
		{status: 503, matches: []error{rockety.ErrTransient}},
		{status: 504, matches: []error{rockety.ErrTransient}},
		{status: 501, matches: nil, inString: "501 Not Implemented"},
		{status: 418, matches: nil},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			err := error(&rockety.APIError{StatusCode: tt.status, Method: "GET", Path: "/tasks?page=1"})
			for _, s := range sentinels {
				want := false
				for _, m := range tt.matches {
					want = want || m == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(%d, %v) = %v, want %v", tt.status, s, got, want)
				}
			}
			if !strings.Contains(err.Error(), "GET /tasks?page=1") || !strings.Contains(err.Error(), tt.inString) {
				t.Errorf("message %q lacks the request or %q", err, tt.inString)
			}
		})
	}
}

func TestPermanentRefusals(t *testing.T) {
	tests := []struct {
		status      int
		permanent   bool
		wantSummary string
	}{
		{401, true, "the API refused the token (401): check ROCKETY_API_TOKEN"},
		{403, true, "(403): check the token's permissions"},
		{404, true, "the API has no /tasks (404): check ROCKETY_RESOURCES"},
		{400, true, "the API answered 400 Bad Request to GET /tasks?page=1"},
		{422, true, "422"},
		{408, false, "408"},
		{429, false, "429"},
		{500, false, "500"},
		{503, false, "503"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			e := &rockety.APIError{StatusCode: tt.status, Method: "GET", Path: "/tasks?page=1&per_page=100"}
			var err error = fmt.Errorf("listing: %w", e)
			if got := errors.Is(err, rockety.ErrPermanent); got != tt.permanent {
				t.Errorf("Is(ErrPermanent) = %v, want %v", got, tt.permanent)
			}
			if s := e.Summary(); !strings.Contains(s, tt.wantSummary) {
				t.Errorf("Summary = %q, want it to contain %q", s, tt.wantSummary)
			}
		})
	}
}
