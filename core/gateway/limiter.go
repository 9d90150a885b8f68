package gateway

import (
	"hash/maphash"
	"math"
	"net/netip"
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
	// Overflow: the limiter was full, so the request was charged to the
	// bucket that all keys without a bucket of their own share.
	Overflow bool
}

// Limiter is a set of token buckets keyed by string (a key id) or by
// client address (AllowIP). A bucket holds Burst tokens and refills at
// RPM per minute. Safe for concurrent use; buckets are sharded to keep
// lock contention low.
//
// Memory is bounded: a bucket that has refilled is dropped (it is the
// same as a new one, so nothing is lost), and at most MaxBuckets are held.
// When the limiter is full, a key without a bucket gets none: it is
// charged to one overflow bucket shared by all such keys, so a flood of
// new keys (fresh IPv6 addresses, say) fails closed instead of growing
// the process.
type Limiter struct {
	shards [limiterShards]limiterShard
	seed   maphash.Seed
	base   time.Time        // origin of bucket times (monotonic)
	Now    func() time.Time // nil = time.Now
	// MaxBuckets bounds the buckets held (each shard holds its share);
	// 0 = DefaultMaxBuckets. Set it before the first call.
	MaxBuckets int

	overflowMu sync.Mutex // taken inside a shard's lock, never the other way
	overflow   bucket
	overflowOn bool
}

const limiterShards = 32

// DefaultMaxBuckets: at most about 8 MiB (a bucket with its key and map
// slot is about 80 bytes), against the 106 MiB a million fresh /64s
// once cost.
const DefaultMaxBuckets = 100_000

// Sweeps: every sweepEvery calls of a shard, and when a shard is too full
// for a request's buckets — then at most once per fullSweepGap, so a
// flood that keeps the shard full does not buy a scan of it per request.
const (
	sweepEvery   = 1024
	fullSweepGap = time.Second
)

type limiterShard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	calls     int
	swept     bool
	lastSweep int64 // ns since Limiter.base
}

type bucket struct {
	tokens   float64
	rate     float64 // tokens per second
	capacity float64
	last     int64 // ns since Limiter.base
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed(), base: time.Now()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// tier is one bucket a request needs a token from. Its key is bytes on
// the caller's stack (a lookup with m[string(b)] does not allocate), or
// nil for allow's key string.
type tier struct {
	bkey     []byte
	capacity float64
	rate     float64
}

func newTier(lim policy.RateLimit, factor int) tier {
	return tier{capacity: float64(lim.EffectiveBurst() * factor), rate: float64(lim.RPM*factor) / 60}
}

// Allow takes one token from key's bucket under lim. A limit with RPM 0 is
// off and always allows.
func (l *Limiter) Allow(key string, lim policy.RateLimit) Decision {
	if lim.RPM <= 0 {
		return Decision{Allowed: true}
	}
	tiers := [1]tier{newTier(lim, 1)}
	return l.allow(&l.shards[maphash.String(l.seed, key)%limiterShards], key, tiers[:])
}

// IPv6 budgets. A host usually owns a whole /64, a home or office
// network a /56 and a site a /48 (RFC 6177), so an IPv6 client could
// otherwise rotate addresses — or /64s — past any per-address limit. A
// request needs a token from its /64, its /56 and its /48: the /64 has
// the per-IP limit, the /56 ipv6Tier56 times it and the /48 ipv6Tier48
// times it (rate and burst), so a /48 — 65,536 /64s — can never send
// more than 16 clients could, while a few busy hosts sharing a network
// are not starved by one another.
const (
	ipv6Tier56 = 4
	ipv6Tier48 = 16
	ipTiers    = 3
)

// AllowIP takes one token for a client address under lim: from the
// address's bucket for IPv4; for IPv6 from each of its /64, /56 and /48
// buckets, all or none (see ipv6Tier56). The invalid address — a client
// no trusted proxy named — has one bucket shared by all such clients. A
// refused request takes no token; its Decision is that of the bucket that
// makes it wait longest.
func (l *Limiter) AllowIP(ip netip.Addr, lim policy.RateLimit) Decision {
	if lim.RPM <= 0 {
		return Decision{Allowed: true}
	}
	ip = ip.Unmap()
	// Keys: 0xFF (never the first byte of a key id: those are ASCII), the
	// prefix length, the prefix's bytes.
	var keys [ipTiers][2 + 8]byte
	var tiers [ipTiers]tier
	var group []byte // the shard: all of a request's buckets share one lock
	n := 1
	switch {
	case ip.Is4():
		a := ip.As4()
		keys[0] = [10]byte{0xFF, 32, a[0], a[1], a[2], a[3]}
		tiers[0] = newTier(lim, 1)
		tiers[0].bkey = keys[0][:6]
		group = keys[0][2:6]
	case ip.Is6():
		a := ip.As16()
		keys[0] = [10]byte{0xFF, 64, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]}
		keys[1] = [10]byte{0xFF, 56, a[0], a[1], a[2], a[3], a[4], a[5], a[6]}
		keys[2] = [10]byte{0xFF, 48, a[0], a[1], a[2], a[3], a[4], a[5]}
		tiers[0], tiers[1], tiers[2] = newTier(lim, 1), newTier(lim, ipv6Tier56), newTier(lim, ipv6Tier48)
		tiers[0].bkey, tiers[1].bkey, tiers[2].bkey = keys[0][:10], keys[1][:9], keys[2][:8]
		group = keys[2][2:8]
		n = 3
	default:
		keys[0] = [10]byte{0xFF, 0}
		tiers[0] = newTier(lim, 1)
		tiers[0].bkey = keys[0][:2]
	}
	return l.allow(&l.shards[maphash.Bytes(l.seed, group)%limiterShards], "", tiers[:n])
}

// allow takes a token from each tier's bucket in shard s, or none. key is
// the key of a tier without bkey. (A key string apart from tiers keeps
// the tiers' bytes on the caller's stack.)
func (l *Limiter) allow(s *limiterShard, key string, tiers []tier) Decision {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	ns := int64(now.Sub(l.base))
	var bs [ipTiers]*bucket
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	capacity := l.shardCap()
	// A sweep before any lookup, so no bucket this request holds is
	// dropped under it.
	if s.calls%sweepEvery == 0 ||
		len(s.buckets)+len(tiers) > capacity && (!s.swept || ns-s.lastSweep >= int64(fullSweepGap)) {
		s.sweep(ns)
	}
	if len(tiers) == 1 { // the usual case (a key, an IPv4 client) and a known key: in short
		t := &tiers[0]
		var b *bucket
		if t.bkey != nil {
			b = s.buckets[string(t.bkey)]
		} else {
			b = s.buckets[key]
		}
		if b != nil {
			b.rate, b.capacity = t.rate, t.capacity
			b.refill(ns)
			allowed := b.tokens >= 1
			if allowed {
				b.tokens--
			}
			d := b.decision(allowed)
			d.Allowed = allowed
			return d
		}
	}
	overflow := -1 // the tier charged to the overflow bucket
	// Buckets of keys not seen yet are stored only if the request is
	// allowed: refused requests do not fill the table.
	var fresh [ipTiers]bucket
	nfresh := 0
	for i, t := range tiers {
		var b *bucket
		if t.bkey != nil {
			b = s.buckets[string(t.bkey)]
		} else {
			b = s.buckets[key]
		}
		if b == nil {
			if len(s.buckets)+nfresh >= capacity {
				if overflow < 0 {
					overflow = i
				}
				continue
			}
			fresh[i] = bucket{tokens: t.capacity, last: ns}
			b = &fresh[i]
			nfresh++
		}
		b.rate, b.capacity = t.rate, t.capacity
		b.refill(ns)
		bs[i] = b
	}
	if overflow >= 0 {
		l.overflowMu.Lock()
		defer l.overflowMu.Unlock()
		// The base limit (the narrowest tier's), whichever tiers overflowed:
		// all new keys together get what one key would.
		o := &l.overflow
		if !l.overflowOn {
			*o, l.overflowOn = bucket{tokens: tiers[0].capacity, last: ns}, true
		}
		o.rate, o.capacity = tiers[0].rate, tiers[0].capacity
		o.refill(ns)
		for i := range tiers {
			if bs[i] == nil {
				bs[i] = o
			}
		}
	}
	// All or none: the overflow bucket may stand for several tiers, but is
	// charged once.
	allowed := true
	for _, b := range bs[:len(tiers)] {
		if b.tokens < 1 {
			allowed = false
		}
	}
	var d Decision
	for i, b := range bs[:len(tiers)] {
		if allowed && (b != &l.overflow || i == overflow) {
			b.tokens--
		}
		bd := b.decision(allowed)
		bd.Overflow = b == &l.overflow
		switch {
		case i == 0,
			allowed && tighterBucket(bd, d),
			!allowed && bd.RetryAfter > d.RetryAfter:
			d = bd
		}
	}
	d.Allowed = allowed
	if allowed && nfresh > 0 {
		for i, t := range tiers {
			if bs[i] != &fresh[i] {
				continue
			}
			b := new(bucket)
			*b = fresh[i]
			if t.bkey != nil {
				s.buckets[string(t.bkey)] = b
			} else {
				s.buckets[key] = b
			}
		}
	}
	return d
}

// tighterBucket: a leaves fewer requests than b (at the same count, the
// smaller bucket).
func tighterBucket(a, b Decision) bool {
	if a.Remaining != b.Remaining {
		return a.Remaining < b.Remaining
	}
	return a.Limit < b.Limit
}

func (b *bucket) refill(ns int64) {
	if el := float64(ns-b.last) * 1e-9; el > 0 { // seconds
		b.tokens = math.Min(b.capacity, b.tokens+el*b.rate)
	}
	b.last = ns
}

// decision describes b after a request (allowed: its token is taken).
func (b *bucket) decision(allowed bool) Decision {
	d := Decision{Limit: int(b.capacity), Remaining: int(b.tokens), Reset: seconds((b.capacity - b.tokens) / b.rate)}
	if !allowed && b.tokens < 1 {
		d.RetryAfter = seconds((1 - b.tokens) / b.rate)
	}
	return d
}

func (l *Limiter) shardCap() int {
	n := l.MaxBuckets
	if n <= 0 {
		n = DefaultMaxBuckets
	}
	return max(1, (n+limiterShards-1)/limiterShards)
}

func seconds(s float64) time.Duration { return time.Duration(math.Ceil(s * float64(time.Second))) }

// sweep drops the buckets that have refilled: a full bucket is the same
// as a new one, so dropping it loses nothing.
func (s *limiterShard) sweep(ns int64) {
	s.swept, s.lastSweep = true, ns
	for k, b := range s.buckets {
		if b.tokens+float64(ns-b.last)/float64(time.Second)*b.rate >= b.capacity {
			delete(s.buckets, k)
		}
	}
}

// Len is the number of buckets held (the overflow bucket not counted).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
