package jobs

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// retryFor bounds how long an operation is retried while a cluster elects
// a new leader or a client reconnects to another node (a few seconds).
const retryFor = 30 * time.Second

// retry runs op until it succeeds, fails with an answer (not found, already
// exists, a revision conflict) or retryFor has passed. Each attempt gets at
// most 5 s. op must be safe to repeat: a put of the same bytes, a publish
// with a message id, a compare-and-set whose caller checks a conflict.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	deadline := time.Now().Add(retryFor)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(actx)
		cancel()
		if err == nil || final(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// final reports errors that are answers, not failures to get one.
func final(err error) bool {
	var perm *permanentError
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyExists) ||
		errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrObjectNotFound) ||
		errors.Is(err, errLostJob) || errors.Is(err, ErrNoAdapter) || errors.As(err, &perm) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription)
}

// kvGet reads key, retrying failures to get an answer.
func kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) {
		e, err = kv.Get(ctx, key)
		return err
	})
	return e, err
}

// casPut writes value under key if the key is at revision rev (0: does not
// exist) and returns the new revision. A conflict seen after a retried
// attempt may be that attempt's own write, whose answer was lost: if the key
// holds value, the write is taken as done.
func casPut(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64) (uint64, error) {
	var out uint64
	tries := 0
	err := retry(ctx, func(ctx context.Context) (err error) {
		tries++
		if rev == 0 {
			out, err = kv.Create(ctx, key, value)
		} else {
			out, err = kv.Update(ctx, key, value, rev)
		}
		if tries > 1 && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
			if e, gerr := kv.Get(ctx, key); gerr == nil && bytes.Equal(e.Value(), value) {
				out, err = e.Revision(), nil
			}
		}
		return err
	})
	return out, err
}

// putObject stores data under name, retrying.
func putObject(ctx context.Context, obs jetstream.ObjectStore, name string, data []byte) (*jetstream.ObjectInfo, error) {
	var info *jetstream.ObjectInfo
	err := retry(ctx, func(ctx context.Context) (err error) {
		info, err = obs.PutBytes(ctx, name, data)
		return err
	})
	return info, err
}

// getObject reads the object name, retrying.
func getObject(ctx context.Context, obs jetstream.ObjectStore, name string) ([]byte, error) {
	var data []byte
	err := retry(ctx, func(ctx context.Context) (err error) {
		data, err = obs.GetBytes(ctx, name)
		return err
	})
	return data, err
}
