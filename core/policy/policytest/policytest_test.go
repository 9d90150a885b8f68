package policytest_test

import (
	"testing"

	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/policy/policytest"
)

func TestMemStore(t *testing.T) {
	policytest.Run(t, func(*testing.T) policy.Store { return policytest.NewMemStore() })
}
