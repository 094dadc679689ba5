package memstore_test

import (
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
	"github.com/symbot/symbot/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) symbot.Store { return memstore.New() })
}

// TestContractRerunUpdates runs the suite with every Update run twice: the
// first run must leave no trace, and the suite's fns must allow the rerun
// that Store.Update permits.
func TestContractRerunUpdates(t *testing.T) {
	storetest.Run(t, func(t *testing.T) symbot.Store {
		s := memstore.New()
		s.RerunUpdates = true
		return s
	})
}
