package inbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// SQLite writes through the files it opened, whatever happens to their
// names: a -wal removed under a running process still takes every commit,
// and a restart then opens the database without them. So the inbox checks,
// off the request path, that the paths still name the files it has open;
// once one does not, it stops acknowledging, since nothing it stores from
// then on survives a restart.

// filesCheckInterval is how often the paths are compared with the open
// files: three stat calls.
const filesCheckInterval = 500 * time.Millisecond

// fileID is a file's identity, whatever path names it.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)} //nolint:unconvert // Dev's type differs by platform
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}

// openFileIDs is the identity of every file this process has open, or an
// error where the system does not tell (it reads /proc/self/fd).
func openFileIDs() (map[fileID]bool, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	ids := make(map[fileID]bool, len(entries))
	for _, e := range entries {
		if fi, err := os.Stat("/proc/self/fd/" + e.Name()); err == nil {
			ids[idOf(fi)] = true
		}
	}
	return ids, nil
}

// sqliteFiles is what an SQLite inbox writes: the database file, its
// write-ahead log and their directory, with the identities they had when it
// opened them.
type sqliteFiles struct {
	path, wal, dir string
	dbID, dirID    fileID
	walID          fileID
	walKnown       bool // walID is the log SQLite has open
}

// newSQLiteFiles records the identities of the files SQLite has open; lock
// is the inbox's own descriptor of the database file. SQLite opens the log
// at its first read of the database, which migrating is.
func newSQLiteFiles(path string, lock *os.File) (*sqliteFiles, error) {
	f := &sqliteFiles{path: path, wal: path + "-wal", dir: filepath.Dir(path)}
	fi, err := lock.Stat()
	if err != nil {
		return nil, err
	}
	f.dbID = idOf(fi)
	if f.dirID, err = statID(f.dir); err != nil {
		return nil, err
	}
	if id, err := statID(f.wal); err == nil {
		f.walID, f.walKnown = id, true
	}
	return f, nil
}

// check reports, as an error, a path that no longer names the file this
// process writes through.
func (f *sqliteFiles) check() error {
	if err := sameFile("directory", f.dir, f.dirID); err != nil {
		return err
	}
	if err := sameFile("file", f.path, f.dbID); err != nil {
		return err
	}
	id, err := statID(f.wal)
	if err == nil && f.walKnown && id == f.walID {
		return nil
	}
	// The log at the path is not the one last seen. SQLite deletes its log
	// when its last connection closes and starts a new one when it opens
	// again: what this process still has open tells that from a removal.
	open, openErr := openFileIDs()
	if f.walKnown && (openErr != nil || open[f.walID]) {
		return sameFile("write-ahead log", f.wal, f.walID)
	}
	f.walID, f.walKnown = id, err == nil && openErr == nil && open[id]
	return nil
}

// sameFile reports path no longer naming the file want, or nil.
func sameFile(what, path string, want fileID) error {
	id, err := statID(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("inbox: the SQLite database's %s %s was removed or renamed under the running inbox", what, path)
	case err != nil:
		return fmt.Errorf("inbox: the SQLite database's %s %s cannot be checked: %w", what, path, err)
	case id != want:
		return fmt.Errorf("inbox: the SQLite database's %s %s was replaced by another file under the running inbox", what, path)
	}
	return nil
}

// watchFiles records the database's files, then checks them every
// filesCheckInterval until close. Once a path no longer names the file this process writes, it calls
// refuse, which stops acknowledgements and returns once none is being
// committed, then saves a copy of the database as this process has it and
// logs what to do. It does not recover by itself: the files at the paths
// are no longer the ones it writes, and only an operator can tell which to
// keep.
func (s *sqliteDB) watchFiles(log *slog.Logger, refuse func(error)) error {
	files, err := newSQLiteFiles(s.path, s.lock)
	if err != nil {
		return fmt.Errorf("inbox: the SQLite database's files: %w", err)
	}
	s.files = files
	s.stopWatching = every(filesCheckInterval, func() bool {
		if err := s.files.check(); err != nil {
			refuse(fmt.Errorf("%w: deliveries are refused until it is restarted", err))
			s.filesGone(log, err)
			return false
		}
		return true
	})
	return nil
}

// filesGone saves what this process has of the database where an operator
// finds it, and tells them what happened and what to do.
func (s *sqliteDB) filesGone(log *slog.Logger, cause error) {
	attrs := []any{"err", cause, "database", s.files.path}
	saved, err := s.saveCopy()
	if err != nil {
		log.Error("inbox: the database's files changed under the running inbox, and saving a copy failed: its acknowledged deliveries are only in this process now. "+
			"Acknowledgements stopped; it does not recover by itself.", append(attrs, "copy_err", err)...)
		return
	}
	log.Error("inbox: the database's files changed under the running inbox: acknowledgements stopped, and it does not recover by itself. "+
		"A copy with every acknowledged delivery was saved: stop this process, remove the database and its -wal and -shm files, "+
		"move the copy to the database's path (making its directory again if need be), and start it again.", append(attrs, "copy", saved)...)
}

// saveCopy writes the database as this process sees it, every committed
// acknowledgement included, to a new file beside the database's path, or
// beside the file itself where that path's directory is gone.
func (s *sqliteDB) saveCopy() (string, error) {
	dir := s.files.dir
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		now, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(s.lock.Fd())))
		if err != nil {
			return "", fmt.Errorf("the directory %s is gone, and where the file is now cannot be told: %w", dir, err)
		}
		dir = filepath.Dir(now)
	}
	dst := filepath.Join(dir, filepath.Base(s.files.path)+".rescued-"+time.Now().UTC().Format("20060102T150405.000Z"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return "", err
	}
	// VACUUM INTO does not sync what it wrote.
	if err := syncPath(dst); err != nil {
		return "", err
	}
	return dst, syncPath(dir)
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// filesWatcher is a database whose files can be removed under it: Open has
// it refuse deliveries through its Acceptor once they are.
type filesWatcher interface {
	watchFiles(log *slog.Logger, refuse func(error)) error
}
