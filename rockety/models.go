package rockety

import "github.com/rockety-io/rockety-bridge/rockety/model"

// The resource models live in the leaf package model, so that subscribers
// decoding events get them without the client; these aliases keep
// rockety.Task and friends the same types for the client's callers.
type (
	// ID is an item's identifier in its string form (see model.ID).
	ID = model.ID
	// Project is a Rockety project as the API returns it (see model.Project).
	Project = model.Project
	// Task is a Rockety task as the API returns it (see model.Task).
	Task = model.Task
	// User is a Rockety user as the API returns it (see model.User).
	User = model.User
	// Item is one element of a resource, typed or not (see model.Item).
	Item = model.Item
)

// DecodeItem decodes an item's raw JSON into a typed model such as Task; it
// is model.DecodeItem, kept here because a generic function cannot be aliased.
func DecodeItem[T any](it Item) (T, error) { return model.DecodeItem[T](it) }
