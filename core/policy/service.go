package policy

import (
	"context"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// Store is the persistence port for the one policy, id "default".
//
// Get returns the stored document and when it was last set. Implementations
// seed DefaultDocument (at migration), so Get never reports not-found on a
// migrated store. Put replaces the whole document atomically. Both copy the
// bytes they are given or return, and are safe for concurrent use. Errors
// carry their own flmerr codes (DB_ERROR, DB_READ_ONLY, ...). policytest.Run
// checks an implementation against this contract.
type Store interface {
	Get(ctx context.Context) (doc []byte, updatedAt time.Time, err error)
	Put(ctx context.Context, doc []byte, at time.Time) error
}

// Stored is the policy as stored, with the time it was last set.
type Stored struct {
	Policy    Policy    `json:"policy"`
	UpdatedAt time.Time `json:"updated_at"`
	// Warnings names the fields of the stored document this version
	// ignores, each with the field it most likely meant. An earlier FLM
	// kept unknown fields where this one refuses them. Show loads such a
	// document only when ignoring each of them cannot open the gateway
	// (a stray cors field, say); it must still not pass for a clean one:
	// show it to the user (`flm check`, `security policy show`, the
	// proxy's log). A misspelled restriction ("ip_whitelst") is not a
	// warning but a POLICY_INVALID error.
	Warnings []string `json:"warnings,omitempty"`
}

// Service is the policy use case behind `flm security policy show|set` and
// the UI.
type Service struct {
	Store Store
	Now   func() time.Time // nil means time.Now
}

func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// Stores keep milliseconds; what Set returns matches what Show reads.
	return now().UTC().Truncate(time.Millisecond)
}

func (s *Service) store() (Store, error) {
	if s == nil || s.Store == nil {
		return nil, flmerr.New(flmerr.Internal, "policy service has no store")
	}
	return s.Store, nil
}

// Show returns the stored policy. A stored document that no longer parses
// is reported as POLICY_INVALID, never replaced by a default: a broken
// policy must be fixed, not silently opened up. Unknown fields an earlier
// FLM stored (it kept every field it did not know) fail closed too, with
// POLICY_INVALID naming each field and the fix, unless ignoring them
// cannot let in more than their author meant (Policy.failClosed has the
// rule): those are kept, enforced as nothing (as that FLM did), and
// reported in Warnings; Validate on the policy refuses them, and so does
// Set until they are fixed.
func (s *Service) Show(ctx context.Context) (Stored, error) {
	st, err := s.store()
	if err != nil {
		return Stored{}, err
	}
	doc, at, err := st.Get(ctx)
	if err != nil {
		return Stored{}, err
	}
	p, err := parse(doc, true)
	if err != nil {
		return Stored{}, flmerr.Wrap(err, flmerr.PolicyInvalid,
			"the stored security policy is invalid; replace it with `flm security policy set`")
	}
	if err := p.failClosed(); err != nil {
		return Stored{}, flmerr.Wrap(err, flmerr.PolicyInvalid, "the stored security policy is invalid")
	}
	return Stored{Policy: p, UpdatedAt: at, Warnings: p.ignored()}, nil
}

// Set validates doc and, only if it is valid, replaces the stored policy
// with its normalized form (Policy.Document).
func (s *Service) Set(ctx context.Context, doc []byte) (Stored, error) {
	st, err := s.store()
	if err != nil {
		return Stored{}, err
	}
	p, err := Parse(doc)
	if err != nil {
		return Stored{}, err
	}
	at := s.now()
	if err := st.Put(ctx, p.Document(), at); err != nil {
		return Stored{}, err
	}
	return Stored{Policy: p, UpdatedAt: at}, nil
}
