package gateway

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/policy"
)

// perIP is the proxy's default per-IP limit.
var perIP = policy.RateLimit{RPM: 600, Burst: 100}

func frozenLimiter() (*Limiter, *time.Time) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter()
	l.Now = func() time.Time { return now }
	return l, &now
}

// v6 is the address 2001:db8:<site>:<sub><net>::1: site picks the /48,
// sub the /56 inside it, net the /64 inside that.
func v6(site uint16, sub, net byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(site >> 8), byte(site), sub, net, 15: 1})
}

func countAllowed(l *Limiter, n int, ip func(i int) netip.Addr) int {
	ok := 0
	for i := range n {
		if l.AllowIP(ip(i), perIP).Allowed {
			ok++
		}
	}
	return ok
}

// The attack: one host of a /48 rotates through its 65,536 /64s, a fresh
// one per request. Grouping by /64 alone gave each a full bucket; the /48
// caps them all at 16 clients' worth.
func TestAttackIPv6RotatingSubnetsOfASite(t *testing.T) {
	l, _ := frozenLimiter()
	got := countAllowed(l, 65536, func(i int) netip.Addr { return v6(0xaa, byte(i>>8), byte(i)) })
	if want := ipv6Tier48 * perIP.Burst; got != want {
		t.Fatalf("a /48 rotating its /64s got %d requests through, want %d (16 × the per-IP burst)", got, want)
	}
	// Another site is not affected.
	if !l.AllowIP(v6(0xbb, 0, 0), perIP).Allowed {
		t.Fatal("another /48 was refused")
	}
}

// Rotating /64s inside one /56 (a home network's delegation) gets the
// /56's 4 ×.
func TestAttackIPv6RotatingSubnetsOfANetwork(t *testing.T) {
	l, _ := frozenLimiter()
	got := countAllowed(l, 1024, func(i int) netip.Addr { return v6(0xaa, 7, byte(i)) })
	if want := ipv6Tier56 * perIP.Burst; got != want {
		t.Fatalf("a /56 rotating its /64s got %d through, want %d", got, want)
	}
	// Addresses inside one /64 share its bucket, as before.
	l, _ = frozenLimiter()
	got = countAllowed(l, 1000, func(i int) netip.Addr {
		a := v6(0xaa, 7, 1).As16()
		a[14], a[15] = byte(i>>8), byte(i)
		return netip.AddrFrom16(a)
	})
	if got != perIP.Burst {
		t.Fatalf("addresses of one /64 got %d through, want %d", got, perIP.Burst)
	}
}

// A refused request takes no token from any of its buckets, and its
// Decision is that of the bucket that refused it (the /48 here).
func TestAllowIPAllOrNone(t *testing.T) {
	l, now := frozenLimiter()
	countAllowed(l, 2000, func(i int) netip.Addr { return v6(0xaa, byte(i>>8), byte(i)) })
	fresh := v6(0xaa, 0xff, 0xfe) // never used: its /64 is full
	d := l.AllowIP(fresh, perIP)
	if d.Allowed || d.Limit != ipv6Tier48*perIP.Burst || d.RetryAfter <= 0 || d.RetryAfter > 10*time.Millisecond {
		t.Fatalf("refused by the /48: %+v", d)
	}
	// One /48 token later (160 per second), the fresh /64 passes with its
	// whole burst still there.
	*now = now.Add(10 * time.Millisecond)
	d = l.AllowIP(fresh, perIP)
	if !d.Allowed {
		t.Fatalf("after the /48 refilled one token: %+v", d)
	}
	*now = now.Add(time.Minute)
	for i := range perIP.Burst {
		if !l.AllowIP(fresh, perIP).Allowed {
			t.Fatalf("the /64 lost tokens to refused requests: refused at %d", i)
		}
	}
}

// The attack on memory: fresh /48s from one /32 (or anywhere), one
// request each. The limiter never holds more than MaxBuckets, and once
// full every new client shares one bucket: the flood is refused instead
// of growing the process. A client that already had a bucket keeps it.
func TestAttackLimiterMemoryFailsClosed(t *testing.T) {
	l, _ := frozenLimiter()
	l.MaxBuckets = 3200
	known := netip.MustParseAddr("198.51.100.7")
	for range 10 {
		l.AllowIP(known, perIP)
	}
	allowed := countAllowed(l, 200_000, func(i int) netip.Addr { return v6(uint16(i), byte(i>>16), 0) })
	if n := l.Len(); n > l.MaxBuckets {
		t.Fatalf("%d buckets held, cap %d", n, l.MaxBuckets)
	}
	// At most one request per 3 buckets (/64, /56, /48) plus the shared
	// overflow bucket's burst.
	if limit := l.MaxBuckets/3 + perIP.Burst; allowed > limit {
		t.Fatalf("%d of 200000 fresh /48s allowed; want at most %d", allowed, limit)
	}
	d := l.AllowIP(v6(0xfffe, 0xff, 0), perIP)
	if d.Allowed || !d.Overflow {
		t.Fatalf("a new client after the flood: %+v, want refused by the shared overflow bucket", d)
	}
	if !l.AllowIP(known, perIP).Allowed {
		t.Fatal("a client with a bucket lost it to the flood")
	}
}

// Buckets that refill are dropped, and a full limiter makes room for new
// clients again once the flood's buckets have refilled.
func TestLimiterEvictsRefilledBuckets(t *testing.T) {
	l, now := frozenLimiter()
	l.MaxBuckets = 320
	countAllowed(l, 5000, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) })
	if d := l.AllowIP(netip.MustParseAddr("192.0.2.1"), perIP); d.Allowed || !d.Overflow {
		t.Fatalf("full limiter, new client: %+v", d)
	}
	// One request used one token; at 10 per second every bucket is full
	// again after 0.1 s. The next sweep (a full shard meeting a new key,
	// at most once a second) drops them.
	*now = now.Add(2 * time.Second)
	newcomers := 0
	for i := range 64 {
		d := l.AllowIP(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), perIP)
		if d.Allowed && !d.Overflow {
			newcomers++
		}
	}
	if newcomers != 64 {
		t.Fatalf("%d of 64 new clients got a bucket of their own after the flood refilled", newcomers)
	}
	if n := l.Len(); n > 200 {
		t.Fatalf("%d buckets kept after the flood refilled", n)
	}
}

// The sweep judges each bucket by its own limit: a key with a slow
// limit is not forgotten (and refilled) because a fast one triggered the
// sweep.
func TestLimiterSweepKeepsSlowBuckets(t *testing.T) {
	l, now := frozenLimiter()
	slow := policy.RateLimit{RPM: 1, Burst: 1}
	if !l.Allow("slow", slow).Allowed {
		t.Fatal("first request refused")
	}
	*now = now.Add(5 * time.Second)
	for range 4 * sweepEvery * limiterShards {
		l.Allow("fast", policy.RateLimit{RPM: 6000})
	}
	if l.Allow("slow", slow).Allowed {
		t.Fatal("a sweep dropped a bucket that had not refilled")
	}
}

func TestAllowIPv4AndUnknown(t *testing.T) {
	l, _ := frozenLimiter()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2")
	if got := countAllowed(l, 150, func(int) netip.Addr { return a }); got != perIP.Burst {
		t.Fatalf("one IPv4 address got %d, want %d", got, perIP.Burst)
	}
	if got := countAllowed(l, 150, func(int) netip.Addr { return b }); got != perIP.Burst {
		t.Fatalf("another (mapped) IPv4 address got %d, want %d", got, perIP.Burst)
	}
	if l.AllowIP(b.Unmap(), perIP).Allowed {
		t.Fatal("a mapped address and its IPv4 form have separate buckets")
	}
	// Clients no trusted proxy named share one bucket.
	if got := countAllowed(l, 150, func(int) netip.Addr { return netip.Addr{} }); got != perIP.Burst {
		t.Fatalf("unknown clients got %d, want %d", got, perIP.Burst)
	}
	if !l.AllowIP(a, policy.RateLimit{}).Allowed {
		t.Fatal("rpm 0 must be off")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter()
	l.MaxBuckets = 64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20000 {
				if i%2 == 0 {
					l.AllowIP(v6(uint16(g), byte(i), byte(i>>8)), perIP)
				} else {
					l.Allow(string(rune('a'+i%26)), perIP)
				}
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 64 {
		t.Fatalf("%d buckets, cap 64", n)
	}
}

// The per-IP check on every request (docs/PERFORMANCE.md). Before the
// tiers it was Allow(ip.String()) (IPv4) or Allow(/64 prefix string).
func BenchmarkLimiterIPv4(b *testing.B) {
	l := NewLimiter()
	lim := policy.RateLimit{RPM: 1 << 30, Burst: 1 << 30}
	ip := netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	for b.Loop() {
		l.AllowIP(ip, lim)
	}
}

func BenchmarkLimiterIPv6(b *testing.B) {
	l := NewLimiter()
	lim := policy.RateLimit{RPM: 1 << 30, Burst: 1 << 30}
	ip := netip.MustParseAddr("2001:db8:1:2::7")
	b.ReportAllocs()
	for b.Loop() {
		l.AllowIP(ip, lim)
	}
}

func BenchmarkLimiterKey(b *testing.B) {
	l := NewLimiter()
	lim := policy.RateLimit{RPM: 1 << 30, Burst: 1 << 30}
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("key_0123456789abcdef", lim)
	}
}
