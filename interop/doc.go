// Package interop holds tests that read the bridge's messages with other
// people's clients, in a module of its own so that their dependencies stay
// out of the bridge's: cd interop && go test ./...
package interop
