// This file holds the retry loop every storage call goes through: capped
// exponential backoff with jitter until the call succeeds, fails for good,
// or the context ends. A retrier is stateless but for the counters it adds to.

package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
)

type retrier struct {
	min, max time.Duration
	log      *slog.Logger
	retries  *atomic.Int64 // attempts after a failure
	failures *atomic.Int64 // failed calls, retried or not
}

// permanent reports whether err will not go away by trying again: the upload
// is gone or the request is wrong.
func permanent(err error) bool {
	return errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrInvalidPart) ||
		errors.Is(err, objstore.ErrInvalidKey) || errors.Is(err, objstore.ErrPartTooSmall)
}

// do runs op until it succeeds, fails permanently, or ctx ends.
func (r retrier) do(ctx context.Context, what string, op func(context.Context) error) error {
	delay := r.min
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		r.failures.Add(1)
		if permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: gave up (%w): %w", what, context.Cause(ctx), err)
		}
		// Jitter: wait between half and all of delay.
		wait := delay/2 + rand.N(delay/2+1)
		r.log.Warn("upload: storage call failed; retrying", "op", what, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up (%w): %w", what, context.Cause(ctx), err)
		case <-t.C:
		}
		r.retries.Add(1)
		delay = min(2*delay, r.max)
	}
}
