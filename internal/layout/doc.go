// Package layout holds no code: its test checks every package of the module
// against the "may import" column of the Layout table in DESIGN.md, read from
// the file itself so that the contract and the check cannot drift apart.
package layout
