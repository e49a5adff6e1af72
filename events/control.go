package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ResyncMode is what a resync publishes.
type ResyncMode string

// The modes of a resync.
const (
	// ResyncFull runs a full traversal at once: what changed is
	// published, deletes are found.
	ResyncFull ResyncMode = "full"
	// ResyncSnapshot also publishes one snapshot event per current item,
	// unchanged ones too, each with the resync's id.
	ResyncSnapshot ResyncMode = "snapshot"
)

// ResyncRequest is the body of a request on P.control.resync.<resource>.
type ResyncRequest struct {
	Mode ResyncMode `json:"mode"`
}

// ResyncReply is the lease holder's answer to a ResyncRequest.
type ResyncReply struct {
	Accepted bool   `json:"accepted"`
	ResyncID string `json:"resync_id,omitempty"`
	// Instance is the BRIDGE_INSTANCE_ID of the replica that answered.
	Instance string `json:"instance"`
	Error    string `json:"error,omitempty"`
}

// ParseResyncRequest reads a resync request's body. An empty body asks for
// a full resync.
func ParseResyncRequest(body []byte) (ResyncMode, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return ResyncFull, nil
	}
	var r ResyncRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return "", fmt.Errorf(`events: resync request %q: %v; send {"mode":"full"} or {"mode":"snapshot"}`, truncate(body), err)
	}
	switch r.Mode {
	case ResyncFull, ResyncSnapshot:
		return r.Mode, nil
	case "":
		return ResyncFull, nil
	}
	return "", fmt.Errorf(`events: resync mode %q: want "full" or "snapshot"`, r.Mode)
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
