package ftps

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// Warm logs in up to n connections at once (at most MaxConns) and leaves
// them idle in the pool, so that the first parallel reads and listings
// don't each wait for a login: a login costs about ten round trips. It
// never waits for a connection to be released: when the server caps
// connections (421) the pool shrinks meanwhile, and the ones held here
// would come back only once Warm gave up.
func (c *Client) Warm(ctx context.Context, n int) error {
	n = min(n, c.cfg.MaxConns)
	conns := make([]*conn, n)
	var g errgroup.Group
	for i := range conns {
		g.Go(func() error {
			cn, _, err := c.take(ctx, false)
			if errors.Is(err, errNoRoom) {
				return nil
			}
			conns[i] = cn
			return err
		})
	}
	err := g.Wait()
	for _, cn := range conns {
		if cn != nil {
			g.Go(func() error { c.release(cn, true); return nil })
		}
	}
	g.Wait()
	return err
}
