package publisher

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/plan"
)

// hashKeyKey is where the deployment's hash key lives in the checkpoints
// bucket: '=' never starts a resource name, so it meets none.
const hashKeyKey = "=hash-key"

// HashKey returns the deployment's key for item hashes (plan.UseHashKey),
// kept in the checkpoints bucket so that every replica and every restart
// hashes alike. The first bridge of a deployment stores this process's
// random key; any later one reads it. The key is a secret of the
// deployment's NATS, like the items themselves: whoever knows it could
// craft an edit the bridge takes for no change.
func HashKey(ctx context.Context, kv jetstream.KeyValue) ([2]uint64, error) {
	for range 3 {
		e, err := kv.Get(ctx, hashKeyKey)
		if err == nil {
			return parseHashKey(e.Value())
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return [2]uint64{}, fmt.Errorf("publisher: reading the hash key (%s %s): %w", kv.Bucket(), hashKeyKey, err)
		}
		k := plan.HashKey()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], k[0])
		binary.LittleEndian.PutUint64(b[8:], k[1])
		_, err = kv.Create(ctx, hashKeyKey, []byte(hex.EncodeToString(b[:])))
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return [2]uint64{}, fmt.Errorf("publisher: storing the hash key (%s %s): %w", kv.Bucket(), hashKeyKey, err)
		}
		// Another replica stored one first: read it.
	}
	return [2]uint64{}, fmt.Errorf("publisher: the hash key (%s %s) keeps changing under us", kv.Bucket(), hashKeyKey)
}

func parseHashKey(v []byte) ([2]uint64, error) {
	b, err := hex.DecodeString(string(v))
	if err != nil || len(b) != 16 {
		return [2]uint64{}, fmt.Errorf("publisher: the hash key in the checkpoints bucket (%s) is %d bytes of %q, not 32 hex digits; delete the key and restart every replica, which then re-reads the mirror's values once", hashKeyKey, len(v), v)
	}
	return [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}, nil
}
