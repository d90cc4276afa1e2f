package inbox

import (
	"sync"
	"time"
)

// finishGrace is how long a job counts as this process's after its Work
// returns: River's completer records the outcome meanwhile.
const finishGrace = 30 * time.Second

// inFlight is the set of jobs this process is working, or finished so
// recently that River may still be recording their outcome. A job River
// shows running for this process but that is not in the set was lost
// between them: its outcome could not be recorded (a full disk, a database
// restart), and it is handed back instead of waiting for River's stuck-job
// rescue.
type inFlight struct {
	mu     sync.Mutex
	jobs   map[int64]time.Time // zero while running, else when it finished
	pruned time.Time           // when finished jobs were last forgotten
}

func (f *inFlight) add(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobs == nil {
		f.jobs = map[int64]time.Time{}
	}
	f.jobs[id] = time.Time{}
}

func (f *inFlight) done(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.jobs[id] = now
	// Forgetting is a walk of the whole set: do it once a grace period, not
	// at every job.
	if now.Sub(f.pruned) < finishGrace {
		return
	}
	f.pruned = now
	for id, at := range f.jobs {
		if !at.IsZero() && now.Sub(at) > finishGrace {
			delete(f.jobs, id)
		}
	}
}

// holds reports whether the job is running here or finished within finishGrace.
func (f *inFlight) holds(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.jobs[id]
	return ok && (at.IsZero() || time.Since(at) <= finishGrace)
}
