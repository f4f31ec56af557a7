#!/usr/bin/env python3
"""A slow disk without slicing, for the flow-control benchmarks.

Mounts a FUSE file system that passes every call through to a directory on
the real disk, and makes writes take the time a disk of BYTES_PER_S would
give them: the device is one FIFO queue, a write of n bytes finishes n /
BYTES_PER_S after the one before it (or after it arrived, if the queue was
empty), and fsync waits for what was written before it, then pays
FLUSH_MS and the real fdatasync of the backing file.

Why: the cgroup blk-throttle releases writes in slices of tens of
milliseconds, so a lone writer already sees a p99 of ~47 ms on it
(docs/BENCHMARKS.md). A latency target below that cannot be shown on it.
This device's latency is its queue and nothing else, as on a real slow
disk, so a controller that keeps the queue short keeps latency short.

The rate can be changed while mounted: write a number of bytes per second
(0 for no limit) into a new file and rename it to the one named by
--control.

Usage: slowfs.py BACKING_DIR MOUNTPOINT --bytes-per-s N [--flush-ms F] [--control FILE]
Needs root, libfuse3 and the mfusepy package (scripts/bench-flow installs them).
"""
import argparse
import errno
import os
import threading
import time

import mfusepy as fuse


class Device:
    """One FIFO queue of writes at a rate: where the time goes."""

    def __init__(self, bytes_per_s, flush_s, control):
        self.lock = threading.Lock()
        self.bytes_per_s = bytes_per_s
        self.flush_s = flush_s
        self.busy_until = 0.0
        # Absolute: libfuse may change the working directory.
        self.control = os.path.abspath(control) if control else None
        self.control_mtime = None

    def _rate(self):
        # Polled, not watched: a stat per request is cheap beside the write.
        if self.control is None:
            return self.bytes_per_s
        # Write the file whole and rename it into place: a file read while
        # being written (empty) keeps the rate it had.
        try:
            mtime = os.stat(self.control).st_mtime_ns
            if mtime != self.control_mtime:
                with open(self.control) as f:
                    self.bytes_per_s = int(f.read().strip())
                self.control_mtime = mtime
        except (OSError, ValueError):
            pass
        return self.bytes_per_s

    def write(self, n):
        with self.lock:
            rate = self._rate()
            now = time.monotonic()
            if rate <= 0:
                self.busy_until = max(self.busy_until, now)
                return
            done = max(now, self.busy_until) + n / rate
            self.busy_until = done
        wait = done - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def flush(self):
        with self.lock:
            done = max(time.monotonic(), self.busy_until) + self.flush_s
            self.busy_until = done
        wait = done - time.monotonic()
        if wait > 0:
            time.sleep(wait)


class SlowFs(fuse.Operations):
    use_ns = True

    def __init__(self, root, device):
        self.root = os.path.realpath(root)
        self.device = device

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _call(self, f, *args):
        try:
            return f(*args)
        except OSError as e:
            raise fuse.FuseOSError(e.errno or errno.EIO) from e

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path, mode):
        return self._call(os.chmod, self._path(path), mode)

    def chown(self, path, uid, gid):
        return self._call(os.chown, self._path(path), uid, gid)

    def getattr(self, path, fh=None):
        st = self._call(os.lstat, self._path(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")
        out = {k: getattr(st, k) for k in keys}
        # use_ns: times go to FUSE in nanoseconds.
        for k in ("st_atime", "st_mtime", "st_ctime"):
            out[k] = getattr(st, k + "_ns")
        return out

    def readdir(self, path, fh):
        return [".", ".."] + self._call(os.listdir, self._path(path))

    def mkdir(self, path, mode):
        return self._call(os.mkdir, self._path(path), mode)

    def rmdir(self, path):
        return self._call(os.rmdir, self._path(path))

    def unlink(self, path):
        return self._call(os.unlink, self._path(path))

    def rename(self, old, new):
        return self._call(os.rename, self._path(old), self._path(new))

    def link(self, target, name):
        return self._call(os.link, self._path(name), self._path(target))

    def symlink(self, name, target):
        return self._call(os.symlink, target, self._path(name))

    def readlink(self, path):
        return self._call(os.readlink, self._path(path))

    def utimens(self, path, times=None):
        return self._call(os.utime, self._path(path), None, ns=times) if times else self._call(
            os.utime, self._path(path))

    def statfs(self, path):
        st = self._call(os.statvfs, self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
                "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    # The backing file is opened without O_DIRECT: FUSE hands the daemon
    # unaligned buffers. Durability comes from the fdatasync in fsync.
    def _flags(self, flags):
        return flags & ~os.O_DIRECT

    def open(self, path, flags):
        return self._call(os.open, self._path(path), self._flags(flags))

    def create(self, path, mode, fi=None):
        # mfusepy does not pass the caller's flags here; read + write serves
        # every caller (the server creates its segments read + write).
        return self._call(os.open, self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return self._call(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        self.device.write(len(data))
        return self._call(os.pwrite, fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            return self._call(os.ftruncate, fh, length)
        return self._call(os.truncate, self._path(path), length)

    def fallocate(self, path, mode, offset, size, fh):
        if mode != 0:
            raise fuse.FuseOSError(errno.EOPNOTSUPP)
        return self._call(os.posix_fallocate, fh, offset, size)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return self._call(os.close, fh)

    def fsync(self, path, datasync, fh):
        self.device.flush()
        return self._call(os.fdatasync if datasync else os.fsync, fh)

    def opendir(self, path):
        return 0

    def releasedir(self, path, fh):
        return 0

    def fsyncdir(self, path, datasync, fh):
        fd = self._call(os.open, self._path(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._call(os.fsync, fd)
        finally:
            os.close(fd)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("backing")
    p.add_argument("mountpoint")
    p.add_argument("--bytes-per-s", type=int, required=True)
    p.add_argument("--flush-ms", type=float, default=0.5)
    p.add_argument("--control")
    a = p.parse_args()
    device = Device(a.bytes_per_s, a.flush_ms / 1000.0, a.control)
    fuse.FUSE(SlowFs(a.backing, device), a.mountpoint, foreground=True, nothreads=False)


if __name__ == "__main__":
    main()
