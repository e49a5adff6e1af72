// Package schemas holds the JSON Schemas (draft 2020-12) of rockety-bridge's
// public contract: the change event, the command and the result, and the
// typed resources (project, task, user) that travel inside them. The schemas
// are generated from the Go types in events and rockety by this package's
// tests (go test ./schemas -update) and checked in, so a change of the
// contract shows up in review as a change of these files.
//
// The package imports neither events nor rockety: services written in other
// languages take the .json files, and Go services and our own tests validate
// with the functions here without pulling in the bridge.
package schemas

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// BaseID is the URL every schema's $id starts with; the schema named n has
// the $id BaseID + n + ".json". The v1 in it changes only with a breaking
// change of the contract.
const BaseID = "https://schemas.rockety.io/bridge/v1/"

// Draft is the JSON Schema dialect of every schema, its $schema.
const Draft = "https://json-schema.org/draft/2020-12/schema"

//go:embed *.json
var files embed.FS

// compiled is built on first use rather than in init so that importing the
// package costs nothing for a program that never validates.
var compiled = sync.OnceValues(compile)

func compile() (map[string]*jsonschema.Schema, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, fmt.Errorf("schemas: listing embedded schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation only; the contract means
	// it (detected_at is a date-time), so make it an assertion.
	c.AssertFormat()
	for _, file := range names {
		doc, err := readJSON(file)
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(BaseID+file, doc); err != nil {
			return nil, fmt.Errorf("schemas: adding %s: %w", file, err)
		}
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, file := range names {
		sch, err := c.Compile(BaseID + file)
		if err != nil {
			return nil, fmt.Errorf("schemas: compiling %s: %w", file, err)
		}
		out[strings.TrimSuffix(file, ".json")] = sch
	}
	return out, nil
}

func readJSON(file string) (any, error) {
	b, err := files.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("schemas: reading %s: %w", file, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("schemas: parsing %s: %w", file, err)
	}
	return doc, nil
}

// Names lists the schemas by the names Validate takes, sorted: "command",
// "cycle", "event", "project", "result", "resync-reply", "resync-request",
// "task", "user".
func Names() []string {
	names, _ := fs.Glob(files, "*.json") // the pattern is valid, so no error
	for i, n := range names {
		names[i] = strings.TrimSuffix(n, ".json")
	}
	slices.Sort(names)
	return names
}

// ValidateEvent checks the body of a change event against the "event"
// schema. It returns a *ValidationError when the event breaks the contract.
func ValidateEvent(data []byte) error { return Validate("event", data) }

// ValidateCommand checks the body of a command message against the
// "command" schema. It returns a *ValidationError when the command breaks
// the contract.
func ValidateCommand(data []byte) error { return Validate("command", data) }

// ValidateCycleReport checks the body of a cycle report against the
// "cycle" schema. It returns a *ValidationError when the report breaks
// the contract.
func ValidateCycleReport(data []byte) error { return Validate("cycle", data) }

// ValidateResult checks the body of a command result against the "result"
// schema. It returns a *ValidationError when the result breaks the
// contract.
func ValidateResult(data []byte) error { return Validate("result", data) }

// Validate checks the JSON document data against the schema called name,
// one of Names. It returns a *ValidationError when data is JSON that does
// not match the schema, and another error when data is not JSON or name is
// not a schema.
func Validate(name string, data []byte) error {
	all, err := compiled()
	if err != nil {
		return err
	}
	sch, ok := all[name]
	if !ok {
		return fmt.Errorf("schemas: no schema named %q (have %s)", name, strings.Join(Names(), ", "))
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("schemas: %s: not JSON: %w", name, err)
	}
	if err := sch.Validate(doc); err != nil {
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) {
			return fmt.Errorf("schemas: %s: %w", name, err)
		}
		return newValidationError(name, verr)
	}
	return nil
}

// ValidationError is a JSON document that does not match a schema. Its
// message names the schema and, for each problem, the field (as a JSON
// Pointer) and what is wrong, on one line.
type ValidationError struct {
	// Schema is the name of the schema, "event" say.
	Schema string
	// Fields are the JSON Pointers of the fields that failed, in the order
	// of the message, "/revision" say; a missing field is named by where
	// it should be, and "" is the document itself.
	Fields []string

	problems []string
	cause    *jsonschema.ValidationError
}

// printer renders the validator's messages; only English is provided.
var printer = message.NewPrinter(language.English)

func newValidationError(name string, cause *jsonschema.ValidationError) *ValidationError {
	type problem struct{ field, msg string }
	var found []problem
	var walk func(v *jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		// Only the leaves say what is wrong; the inner nodes only say that
		// an allOf or a $ref failed because of them.
		if len(v.Causes) > 0 {
			for _, c := range v.Causes {
				walk(c)
			}
			return
		}
		at := func(prop string) string { return pointer(append(slices.Clone(v.InstanceLocation), prop)) }
		switch k := v.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				found = append(found, problem{at(m), "missing"})
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				found = append(found, problem{at(p), "unknown field, not allowed"})
			}
		case *kind.FalseSchema:
			// A false schema is how the contract forbids a field in some
			// cases (changed on a created event); "false schema" would not
			// say that.
			found = append(found, problem{pointer(v.InstanceLocation), "not allowed here"})
		default:
			found = append(found, problem{pointer(v.InstanceLocation), k.LocalizedString(printer)})
		}
	}
	walk(cause)
	// The validator visits properties in map order; sorting keeps the
	// message the same from one run to the next.
	slices.SortFunc(found, func(a, b problem) int {
		return cmp.Or(cmp.Compare(a.field, b.field), cmp.Compare(a.msg, b.msg))
	})
	found = slices.Compact(found)

	e := &ValidationError{Schema: name, cause: cause}
	for _, p := range found {
		where := p.field
		if where == "" {
			where = "(document)"
		}
		e.problems = append(e.problems, where+": "+p.msg)
		if len(e.Fields) == 0 || e.Fields[len(e.Fields)-1] != p.field {
			e.Fields = append(e.Fields, p.field)
		}
	}
	return e
}

// pointer renders a path as a JSON Pointer (RFC 6901).
func pointer(path []string) string {
	var b strings.Builder
	for _, tok := range path {
		b.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		b.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return b.String()
}

// Error names the schema and every problem found, on one line.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("schemas: invalid %s: %s", e.Schema, strings.Join(e.problems, "; "))
}

// Unwrap returns the validator's own error, whose tree of causes holds
// the schema location of every failure.
func (e *ValidationError) Unwrap() error { return e.cause }
