package inbox

import "time"

// every runs step every interval on a goroutine of its own, until step
// returns false or stop is called; stop returns once step is no longer
// running. The inbox's background work (heartbeats, checkpoints, the
// watch over SQLite's files) runs this way.
func every(interval time.Duration, step func() (again bool)) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if !step() {
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}
