package rockety

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinels that an *APIError (or a transport failure) matches with errors.Is.
var (
	// ErrUnauthorized: the API refused the token (401).
	ErrUnauthorized = errors.New("rockety: unauthorized")
	// ErrForbidden: the token may not do this (403).
	ErrForbidden = errors.New("rockety: forbidden")
	// ErrNotFound: no such resource or item (404).
	ErrNotFound = errors.New("rockety: not found")
	// ErrBadRequest: the API rejected the request as invalid (400, 409, 422).
	ErrBadRequest = errors.New("rockety: bad request")
	// ErrRateLimited: the API's rate limit was hit (429).
	ErrRateLimited = errors.New("rockety: rate limited")
	// ErrPermanent marks answers that retrying will not change until
	// someone fixes something: a 4xx other than 408 and 429 (a wrong token,
	// a missing permission, a resource that does not exist).
	ErrPermanent = errors.New("rockety: refused")
	// ErrTransient marks failures worth retrying later: 429, 500, 502, 503,
	// 504, timeouts and connection errors. Everything else is permanent.
	ErrTransient = errors.New("rockety: transient failure")
	// ErrInvalidOption wraps every error a constructor option reports.
	ErrInvalidOption = errors.New("rockety: invalid option")
	// ErrPagination wraps the guards against listings that never end or
	// contradict themselves.
	ErrPagination = errors.New("rockety: inconsistent pagination")
	// ErrDecode wraps responses that are not the JSON the API promises.
	ErrDecode = errors.New("rockety: malformed response")
)

// APIError is a response from the Rockety API with a status the client does
// not treat as success. Its message never contains the API token.
type APIError struct {
	StatusCode int
	// Code and Message are taken from the API's error body when it has one.
	Code    string
	Message string
	Method  string
	// Path is the request path and query relative to the base URL, e.g.
	// "/tasks?page=3&per_page=100".
	Path string
	// RetryAfter is the wait the API asked for with a 429 or 503, if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rockety: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Code != "" && e.Message != "":
		fmt.Fprintf(&b, " (%s: %s)", e.Code, e.Message)
	case e.Message != "":
		fmt.Fprintf(&b, " (%s)", e.Message)
	case e.Code != "":
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(": ")
		b.WriteString(hint)
	}
	return b.String()
}

func (e *APIError) hint() string {
	if what, fix := e.refusal(); what != "" {
		return what + "; " + fix
	}
	switch {
	case e.StatusCode == http.StatusTooManyRequests && e.RetryAfter > 0:
		return fmt.Sprintf("the API asked to wait %s; lower ROCKETY_RATE_LIMIT if this persists", e.RetryAfter)
	case e.StatusCode == http.StatusTooManyRequests:
		return "lower ROCKETY_RATE_LIMIT if this persists"
	case e.StatusCode >= 500:
		return "the Rockety API failed; it is retried"
	}
	return ""
}

// refusal says what a refusal that a person must fix means, and the fix;
// both empty for other statuses. Error and Summary word it their ways.
func (e *APIError) refusal() (what, fix string) {
	path, _, _ := strings.Cut(e.Path, "?")
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return "the API refused the token", "check ROCKETY_API_TOKEN or ROCKETY_API_TOKEN_FILE"
	case http.StatusForbidden:
		return "the token is valid but may not do this", "check the token's permissions in Rockety"
	case http.StatusNotFound:
		if strings.Count(strings.Trim(path, "/"), "/") > 0 {
			return "no such item", "it does not exist, or was deleted"
		}
		return "the API has no " + path, "check ROCKETY_RESOURCES and ROCKETY_API_URL"
	}
	return "", ""
}

// Is makes errors.Is(err, ErrNotFound) and friends work on an *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusConflict ||
			e.StatusCode == http.StatusUnprocessableEntity
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrTransient:
		return retryableStatus(e.StatusCode)
	case ErrPermanent:
		return e.StatusCode >= 400 && e.StatusCode < 500 &&
			e.StatusCode != http.StatusTooManyRequests && e.StatusCode != http.StatusRequestTimeout
	}
	return false
}

// Summary is the error in a few words for a readiness probe or a status
// line: what the API said, its status, and what to check.
func (e *APIError) Summary() string {
	if what, fix := e.refusal(); what != "" {
		return fmt.Sprintf("%s (%d): %s", what, e.StatusCode, fix)
	}
	s := fmt.Sprintf("the API answered %d %s to %s %s", e.StatusCode, http.StatusText(e.StatusCode), e.Method, e.Path)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// retryableStatus lists the statuses DESIGN.md says to retry; any other
// failure is reported at once.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// transientError marks a failure below HTTP (connection refused, reset,
// timeout, truncated body) as worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string        { return e.err.Error() }
func (e *transientError) Unwrap() error        { return e.err }
func (e *transientError) Is(target error) bool { return target == ErrTransient }

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It reports false for an empty or unreadable value; a date in the past is a
// zero wait.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// A huge value would overflow Duration; a day is already absurd.
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// newAPIError builds an *APIError from a failed response. body is what was
// read of it (possibly nothing).
func newAPIError(method, path string, resp *http.Response, body []byte, now time.Time) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, Method: method, Path: path}
	if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
		e.RetryAfter = ra
	}
	e.Code, e.Message = parseErrorBody(resp.Header.Get("Content-Type"), body)
	return e
}

// parseErrorBody pulls a code and a message out of the error body shapes APIs
// commonly use. A body that is not JSON (an HTML page from a proxy, say)
// becomes a short description instead of being dumped into the message.
func parseErrorBody(contentType string, body []byte) (code, message string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", ""
	}
	if body[0] != '{' {
		if strings.Contains(contentType, "html") || body[0] == '<' {
			return "", "the response is an HTML page, not JSON: a proxy or gateway in front of the API answered"
		}
		return "", snippet(body)
	}
	var shape struct {
		Error  json.RawMessage `json:"error"`
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &shape) != nil {
		return "", snippet(body)
	}
	code, message = rawText(shape.Code), shape.Message
	if len(shape.Error) > 0 {
		var nested struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		}
		if shape.Error[0] == '{' && json.Unmarshal(shape.Error, &nested) == nil {
			code, message = firstNonEmpty(rawText(nested.Code), code), firstNonEmpty(nested.Message, message)
		} else if s := rawText(shape.Error); s != "" {
			message = firstNonEmpty(message, s)
		}
	}
	if message == "" && len(shape.Errors) > 0 {
		code, message = firstNonEmpty(code, shape.Errors[0].Code), shape.Errors[0].Message
	}
	return code, message
}

// rawText renders a JSON string or number as plain text.
func rawText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// snippet keeps error messages to one readable line.
func snippet(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
