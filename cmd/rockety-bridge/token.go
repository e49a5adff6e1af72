package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// readTokenFile reads a token file. Errors name the file, never its content.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read the token file %s: %v", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("the token file %s is empty", path)
	}
	return tok, nil
}

// tokenFile serves the token from a file and reads it again when the file
// changes, so a rotated Kubernetes secret is picked up without a restart.
// A stat per request is cheap next to an HTTP round trip.
type tokenFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
}

func (t *tokenFile) Token() (string, error) {
	fi, err := os.Stat(t.path)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.token != "" {
			// Kubernetes swaps the file through a symlink; a moment without
			// it is no reason to fail a request.
			return t.token, nil
		}
		_, err := readTokenFile(t.path)
		return "", err
	}
	if t.token != "" && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return t.token, nil
	}
	tok, err := readTokenFile(t.path)
	if err != nil {
		if t.token != "" {
			return t.token, nil
		}
		return "", err
	}
	t.token, t.modTime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}
