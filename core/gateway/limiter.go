package gateway

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/unjuno/flm/core/policy"
)

// Decision is the outcome of one Limiter.Allow, with what the
// X-RateLimit-* and Retry-After headers need.
type Decision struct {
	Allowed   bool
	Limit     int           // bucket capacity (burst)
	Remaining int           // whole tokens left after this request
	Reset     time.Duration // until the bucket is full again
	// RetryAfter is how long until one token is available (refused only).
	RetryAfter time.Duration
}

// Limiter is a set of token buckets keyed by string (a key id, an IP). A
// bucket holds Burst tokens and refills at RPM per minute. Safe for
// concurrent use; buckets are sharded to keep lock contention low.
type Limiter struct {
	shards [limiterShards]limiterShard
	seed   maphash.Seed
	Now    func() time.Time // nil = time.Now
}

const limiterShards = 32

// idleAfter: a full bucket untouched this long is dropped.
const idleAfter = 10 * time.Minute

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// Allow takes one token from key's bucket under lim. A limit with RPM 0 is
// off and always allows.
func (l *Limiter) Allow(key string, lim policy.RateLimit) Decision {
	if lim.RPM <= 0 {
		return Decision{Allowed: true}
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	capacity := float64(lim.EffectiveBurst())
	rate := float64(lim.RPM) / 60 // tokens per second
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%1024 == 0 {
		s.sweep(now, rate, capacity)
	}
	b, ok := s.buckets[key]
	if !ok {
		b = &bucket{tokens: capacity, last: now}
		s.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(capacity, b.tokens+el*rate)
	}
	b.last = now
	d := Decision{Limit: int(capacity)}
	if b.tokens >= 1 {
		b.tokens--
		d.Allowed = true
	} else {
		d.RetryAfter = seconds((1 - b.tokens) / rate)
	}
	d.Remaining = int(b.tokens)
	d.Reset = seconds((capacity - b.tokens) / rate)
	return d
}

func seconds(s float64) time.Duration { return time.Duration(math.Ceil(s * float64(time.Second))) }

// sweep drops buckets that have been full and idle for idleAfter; the
// limits of the current call stand in for all (buckets of other limits
// only live longer).
func (s *limiterShard) sweep(now time.Time, rate, capacity float64) {
	for k, b := range s.buckets {
		if now.Sub(b.last) > idleAfter && b.tokens+now.Sub(b.last).Seconds()*rate >= capacity {
			delete(s.buckets, k)
		}
	}
}
