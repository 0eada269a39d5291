package cache

import (
	"io"
	"os"
	"testing"
	"time"
)

// TestConfigDefaults: the zero Config gets the documented defaults (the
// README's configuration table, and the bounds its behaviour table
// names). Tests mostly shorten them, so this is where they are held.
func TestConfigDefaults(t *testing.T) {
	c := New(Config[int]{
		Source: NewFileSource(os.DirFS("."), "unused.csv"),
		Parse:  func(io.Reader, Version) (int, error) { return 0, nil },
	})
	got := c.cfg
	for _, d := range []struct {
		name      string
		got, want time.Duration
	}{
		{"TTL", got.TTL, time.Hour},
		{"MaxStaleness", got.MaxStaleness, 24 * time.Hour},
		{"ShrinkWait", got.ShrinkWait, time.Hour},
		{"MissInterval", got.MissInterval, time.Minute},
		{"LoadTimeout", got.LoadTimeout, 2 * time.Minute},
		{"FirstLoadTimeout", got.FirstLoadTimeout, 30 * time.Second},
		{"Backoff", got.Backoff, 30 * time.Second},
	} {
		if d.got != d.want {
			t.Errorf("default %s = %v, want %v", d.name, d.got, d.want)
		}
	}
	if got.MaxShrink != 0.5 || got.RefreshShare != 0.1 {
		t.Errorf("default MaxShrink, RefreshShare = %v, %v; want 0.5, 0.1", got.MaxShrink, got.RefreshShare)
	}
}
