package ftps

import (
	"testing"
	"time"
)

// An idle connection whose data connection was made ahead longest ago
// goes out first: its ClientHello has most likely reached the server.
// Without any made ahead, the most recently used goes out.
func TestPickIdle(t *testing.T) {
	now := time.Now()
	made := func(ago time.Duration) *conn {
		return &conn{id: int64(ago / time.Second), ready: &ready{made: now.Add(-ago)}}
	}
	for _, tc := range []struct {
		name string
		idle []*conn
		want []int64 // ids in the order taken
	}{
		{"oldest first", []*conn{made(2 * time.Second), made(5 * time.Second), made(1 * time.Second)}, []int64{5, 2, 1}},
		{"made ahead first", []*conn{made(3 * time.Second), {id: 7}, {id: 8}}, []int64{3, 8, 7}},
		{"none made ahead", []*conn{{id: 1}, {id: 2}, {id: 3}}, []int64{3, 2, 1}},
	} {
		c := &Client{idle: tc.idle}
		for i, want := range tc.want {
			if got := c.pickIdleLocked(); got.id != want {
				t.Errorf("%s: take %d gave connection %d, want %d", tc.name, i, got.id, want)
			}
		}
		if len(c.idle) != 0 {
			t.Errorf("%s: %d idle left", tc.name, len(c.idle))
		}
	}
}
