package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrLogTrimmed is returned by Remote when the mutations asked for are no
// longer kept (the simulator's log limit is too small for the test).
var ErrLogTrimmed = errors.New("sim: mutation log trimmed")

// Remote drives a simulator in another process through its admin routes
// (AdminPath): the same ground truth and controls a Server gives in the same
// process.
type Remote struct {
	root   string
	token  string
	client *http.Client
}

// NewRemote returns a Remote for the simulator at root, its URL without
// BasePath (http://127.0.0.1:8090), with the token it was started with.
func NewRemote(root, token string) *Remote {
	return &Remote{root: strings.TrimSuffix(root, "/"), token: token, client: &http.Client{}}
}

func (c *Remote) do(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("sim remote: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	if _, ok := ctx.Deadline(); !ok && out != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.root+path, body)
	if err != nil {
		return nil, fmt.Errorf("sim remote: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim remote: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("sim remote: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
		if resp.StatusCode == http.StatusGone {
			err = fmt.Errorf("%w: %w", ErrLogTrimmed, err)
		}
		return nil, err
	}
	if out == nil {
		return resp, nil // the caller streams the body
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("sim remote: %s %s: decoding: %w", method, path, err)
	}
	return resp, nil
}

// Seq returns the log's last and oldest kept positions.
func (c *Remote) Seq(ctx context.Context) (SeqInfo, error) {
	var out SeqInfo
	_, err := c.do(ctx, http.MethodGet, AdminPath+"/seq", nil, &out)
	return out, err
}

// LastSeq returns the Seq of the latest mutation, 0 if none.
func (c *Remote) LastSeq(ctx context.Context) (uint64, error) {
	info, err := c.Seq(ctx)
	return info.LastSeq, err
}

// EachMutation streams the mutations with Seq > since, oldest first, to fn,
// up to the log position the simulator announced when the read began, which
// it returns. An error from fn stops the read and is returned.
func (c *Remote) EachMutation(ctx context.Context, since uint64, fn func(Mutation) error) (last uint64, err error) {
	resp, err := c.do(ctx, http.MethodGet, AdminPath+"/mutations?since="+strconv.FormatUint(since, 10), nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	last, err = strconv.ParseUint(resp.Header.Get(LastSeqHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sim remote: mutations: header %s: %w", LastSeqHeader, err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 256<<10))
	got := since
	for {
		var m Mutation
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return last, fmt.Errorf("sim remote: mutations after %d: %w", got, err)
		}
		got = m.Seq
		if err := fn(m); err != nil {
			return last, err
		}
	}
	if got < last {
		return last, fmt.Errorf("sim remote: mutations: the answer ended at %d, before %d", got, last)
	}
	return last, nil
}

// MutationsSince returns the mutations with Seq > since, oldest first.
func (c *Remote) MutationsSince(ctx context.Context, since uint64) ([]Mutation, error) {
	var out []Mutation
	_, err := c.EachMutation(ctx, since, func(m Mutation) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// Items returns a resource's items in list order, as the API serves them
// (compacted to one line each), and the log position they are exactly the
// state of.
func (c *Remote) Items(ctx context.Context, resource string) (items []json.RawMessage, seq uint64, err error) {
	resp, err := c.do(ctx, http.MethodGet, AdminPath+"/items/"+resource, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	seq, err = strconv.ParseUint(resp.Header.Get(LastSeqHeader), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("sim remote: items: header %s: %w", LastSeqHeader, err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxBody)
	for sc.Scan() {
		items = append(items, json.RawMessage(bytes.Clone(sc.Bytes())))
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("sim remote: items of %s: %w", resource, err)
	}
	return items, seq, nil
}

// Churn returns the background mutation rate per second.
func (c *Remote) Churn(ctx context.Context) (float64, error) {
	var out ChurnInfo
	_, err := c.do(ctx, http.MethodGet, AdminPath+"/churn", nil, &out)
	return out.Rate, err
}

// SetChurn changes the background mutation rate; 0 stops churn. It returns
// the log position when the rate took hold: after SetChurn(0), no churn
// mutation follows it.
func (c *Remote) SetChurn(ctx context.Context, rate float64) (lastSeq uint64, err error) {
	var out ChurnInfo
	_, err = c.do(ctx, http.MethodPut, AdminPath+"/churn", ChurnInfo{Rate: rate}, &out)
	return out.LastSeq, err
}

// Faults returns the faults in force, defaults filled in.
func (c *Remote) Faults(ctx context.Context) (Faults, error) {
	var out Faults
	_, err := c.do(ctx, http.MethodGet, AdminPath+"/faults", nil, &out)
	return out, err
}

// SetFaults replaces the faults in force.
func (c *Remote) SetFaults(ctx context.Context, f Faults) error {
	var out Faults
	_, err := c.do(ctx, http.MethodPut, AdminPath+"/faults", f, &out)
	return err
}

// Stats returns the request counts.
func (c *Remote) Stats(ctx context.Context) (StatsInfo, error) {
	var out StatsInfo
	_, err := c.do(ctx, http.MethodGet, AdminPath+"/stats", nil, &out)
	return out, err
}
