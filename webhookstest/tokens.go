package webhookstest

import (
	"slices"
	"time"
)

// The fake's logins are bounded, so that a long-running fake's memory is too.
const (
	// maxSessionsPerUser is how many logins (an access token with its refresh
	// token) a user holds at once; a new one past it ends the oldest.
	maxSessionsPerUser = 1000
	// maxChallengesPerUser is how many MFA challenges a user has pending at once.
	maxChallengesPerUser = 100
	// challengeLifetime is how long an MFA challenge can be answered.
	challengeLifetime = 10 * time.Minute
	// maxChallengeFailures wrong codes end a challenge.
	maxChallengeFailures = 5
)

// session is one login: an access token, and the refresh token that renews it
// until it is used (refresh tokens rotate: each works once).
type session struct {
	username string
	access   string
	refresh  string    // "" once used
	expires  time.Time // of the access token
}

// dead reports whether nothing can use the session any more.
func (ss *session) dead(now time.Time) bool {
	return ss.refresh == "" && !now.Before(ss.expires)
}

// challenge is an MFA login waiting for its code.
type challenge struct {
	id       string
	username string
	expires  time.Time
	failures int // wrong codes so far
}

// issueLocked starts a session for u: a new access token living life, and a
// new refresh token. It first makes room, dropping the user's dead sessions and
// then, if there are still too many, the oldest.
func (s *Server) issueLocked(u *user, life time.Duration) (access, refresh string) {
	now := time.Now()
	if len(u.sessions) >= maxSessionsPerUser {
		u.sessions = slices.DeleteFunc(u.sessions, func(ss *session) bool {
			if ss.dead(now) {
				s.endSessionLocked(ss)
				return true
			}
			return false
		})
	}
	if over := len(u.sessions) - maxSessionsPerUser + 1; over > 0 {
		for _, ss := range u.sessions[:over] {
			s.endSessionLocked(ss)
		}
		u.sessions = slices.Delete(u.sessions, 0, over)
	}
	ss := &session{username: u.username, access: randomString(40), refresh: randomString(40), expires: now.Add(life)}
	s.accessTok[ss.access] = ss
	s.refreshTok[ss.refresh] = ss
	u.sessions = append(u.sessions, ss)
	return ss.access, ss.refresh
}

// endSessionLocked forgets both of a session's tokens.
func (s *Server) endSessionLocked(ss *session) {
	delete(s.accessTok, ss.access)
	if ss.refresh != "" {
		delete(s.refreshTok, ss.refresh)
	}
	ss.access, ss.refresh = "", ""
}

// useRefreshLocked spends a refresh token: it never works again, and the
// session goes once its access token has expired too.
func (s *Server) useRefreshLocked(ss *session) {
	delete(s.refreshTok, ss.refresh)
	ss.refresh = ""
}

// challengeLocked opens an MFA challenge for u, first dropping the user's
// expired challenges and, if there are still too many, the oldest.
func (s *Server) challengeLocked(u *user) string {
	now := time.Now()
	kept := u.challenges[:0]
	for i, c := range u.challenges {
		// Keep it unexpired, and only if it is among the newest that, with the
		// new one, make maxChallengesPerUser.
		if now.Before(c.expires) && len(u.challenges)-i < maxChallengesPerUser {
			kept = append(kept, c)
		} else {
			delete(s.challenges, c.id)
		}
	}
	clear(u.challenges[len(kept):]) // let the dropped ones be collected
	u.challenges = kept
	c := &challenge{id: randomString(24), username: u.username, expires: now.Add(challengeLifetime)}
	s.challenges[c.id] = c
	u.challenges = append(u.challenges, c)
	return c.id
}

// endChallengeLocked forgets a challenge, answered or failed too often.
func (s *Server) endChallengeLocked(c *challenge) {
	delete(s.challenges, c.id)
	if u := s.users[c.username]; u != nil {
		for i, other := range u.challenges {
			if other == c {
				u.challenges = slices.Delete(u.challenges, i, i+1)
				break
			}
		}
	}
}
