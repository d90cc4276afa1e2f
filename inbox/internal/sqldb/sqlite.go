package sqldb

import "net/url"

// SQLiteDSN is the data source name of every connection to an inbox's SQLite
// file, the receiver's and the command's alike, so the two never disagree on
// how the file is written:
//
//   - WAL lets readers run beside the writer;
//   - synchronous(FULL) makes every commit survive a power cut, not only a
//     crash: a 2xx is a promise;
//   - _txlock=immediate takes the write lock at BEGIN, so a transaction never
//     fails half-way with SQLITE_BUSY; busy_timeout waits for it instead;
//   - wal_autocheckpoint(0): the receiver checkpoints in the background, off
//     the commit path, and bounds the log's size itself.
//
// create is false for a connection that must find an inbox already there:
// it never creates a file at a mistyped path.
func SQLiteDSN(path string, create bool) string {
	mode := "rw"
	if create {
		mode = "rwc"
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=" + mode +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(ON)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)" +
		"&_txlock=immediate&_time_format=sqlite"
}
