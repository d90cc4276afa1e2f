package inbox

import (
	"testing"
	"time"
)

func TestInFlightHoldsRunningAndRecentlyFinishedJobs(t *testing.T) {
	var f inFlight
	f.add(1)
	f.add(2)
	if !f.holds(1) || !f.holds(2) || f.holds(3) {
		t.Fatal("running jobs are held, others are not")
	}
	f.done(1)
	if !f.holds(1) {
		t.Fatal("a job just finished is still held: River may be recording its outcome")
	}
	f.jobs[1] = time.Now().Add(-finishGrace - time.Second)
	if f.holds(1) {
		t.Fatal("a job finished longer ago than the grace is not held")
	}
	f.pruned = time.Time{}
	f.done(2)
	if _, ok := f.jobs[1]; ok {
		t.Fatal("jobs finished long ago are forgotten")
	}
}

func BenchmarkInFlight(b *testing.B) {
	var f inFlight
	for i := range int64(b.N) {
		f.add(i)
		f.done(i)
	}
}
