package inbox_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/cakemail-go/webhooks/internal/testutil"
)

// loopMount mounts a fresh ext4 filesystem of sizeMiB on a loop device for
// t, unmounted when t ends; where that needs powers this process lacks it
// skips t, saying why, or fails it under CI.
func loopMount(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "a full disk is a loop-mounted filesystem filled to the brim, and mounting needs root")
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipOrFailInCI(t, "no %s to make the small filesystem a full disk needs", tool)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(int64(sizeMiB) << 20)
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		testutil.SkipOrFailInCI(t, "cannot loop-mount here (%v: %s): a full disk needs a small filesystem of its own", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// fillDisk writes path until the filesystem has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	for size := 1 << 19; size >= 512; size /= 2 {
		for {
			if _, err := f.Write(chunk[:size]); err != nil {
				break
			}
		}
	}
	f.Sync()
	t.Logf("disk filled: %s MiB of filler", strconv.FormatInt(fileSize(path)>>20, 10))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
