//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// sentCommand is a command the test published.
type sentCommand struct {
	id     string
	action events.Action
	target string // the task id of an update or delete
}

// commander publishes task commands to JetStream at a steady rate, whether
// or not a bridge is running: they wait in the commands stream.
type commander struct {
	js     jetstream.JetStream
	prefix string
	ids    []string // task ids to update and delete
	rnd    *rand.Rand

	mu   sync.Mutex
	sent []sentCommand
	errs int
}

// title is what a command writes into a task, so the mutation log shows
// which command made which write.
func title(commandID string) string { return "command " + commandID }

func (c *commander) run(ctx context.Context, rate float64) {
	if rate <= 0 {
		return
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cmd := sentCommand{id: fmt.Sprintf("%s-%05d", c.prefix, n)}
		var body events.Command
		switch roll := c.rnd.IntN(10); {
		case roll < 5:
			cmd.action = events.ActionUpdate
			cmd.target = c.ids[c.rnd.IntN(len(c.ids))]
			body = events.Command{ID: rockety.ID(cmd.target), Data: json.RawMessage(fmt.Sprintf(`{"title":%q}`, title(cmd.id)))}
		case roll < 8:
			cmd.action = events.ActionCreate
			body = events.Command{Data: json.RawMessage(fmt.Sprintf(`{"title":%q,"status":"todo"}`, title(cmd.id)))}
		default:
			cmd.action = events.ActionDelete
			cmd.target = c.ids[c.rnd.IntN(len(c.ids))]
			body = events.Command{ID: rockety.ID(cmd.target)}
		}
		data, _ := json.Marshal(body)
		msg := nats.NewMsg(subjects.Command("tasks", cmd.action))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, cmd.id)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.js.PublishMsg(pctx, msg)
		cancel()
		c.mu.Lock()
		if err != nil {
			c.errs++ // not sent: it is not expected to have a result
		} else {
			c.sent = append(c.sent, cmd)
		}
		c.mu.Unlock()
	}
}

// commandReport is what became of the commands.
type commandReport struct {
	sent, unsent  int
	byStatus      map[events.Status]int
	multiResults  int // commands with more than one result message
	unknown       int // creates reported failed because a bridge died with the write in flight
	problems      []string
	createdByCmds int
}

// check holds the commands to their results and to the mutation
// log: every command has a result, and a create ran at most once (exactly
// once if it succeeded).
func (c *commander) check(results map[string][]events.Result, muts []sim.Mutation) commandReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := commandReport{sent: len(c.sent), unsent: c.errs, byStatus: map[events.Status]int{}}
	creates := map[string]int{}
	for _, m := range muts {
		if m.Op != sim.OpCreated || m.Resource != "tasks" {
			continue
		}
		var v struct {
			Title string `json:"title"`
		}
		if json.Unmarshal(m.Item, &v) == nil && strings.HasPrefix(v.Title, "command ") {
			creates[strings.TrimPrefix(v.Title, "command ")]++
			r.createdByCmds++
		}
	}
	for _, cmd := range c.sent {
		res := results[cmd.id]
		if len(res) == 0 {
			r.problems = append(r.problems, fmt.Sprintf("command %s (%s %s) has no result", cmd.id, cmd.action, cmd.target))
			continue
		}
		if len(res) > 1 {
			r.multiResults++
		}
		r.byStatus[res[0].Status]++
		if strings.Contains(res[0].Error, "outcome is unknown") {
			r.unknown++
		}
		if cmd.action == events.ActionCreate {
			n := creates[cmd.id]
			switch {
			case n > 1:
				r.problems = append(r.problems, fmt.Sprintf("command %s: create executed %d times", cmd.id, n))
			case n == 0 && res[0].Status == events.StatusSucceeded:
				r.problems = append(r.problems, fmt.Sprintf("command %s: create reported succeeded, but the API created nothing", cmd.id))
			}
		}
	}
	return r
}
