"""Static roots on the control plane's side: watching them, and the cache of
Brotli bodies for `compress = true` routes (docs/static-files.md).

Nothing is compressed on a request path. A thread of its own walks each
compress root when a config is applied and whenever watchdog reports a change
under any static root, and writes the body of each compressible file as
cache_dir/br/<dev>-<inode>-<size>-<mtime ns> (hex): the identity of the
file's content, which is the one name a worker looks for after its own
fstat, so a stale body is never served. Every change is also passed on to the
engine (Engine.static_changed), so that workers look at their open files
again at once rather than within the second they otherwise take.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from synapserve import mime

log = logging.getLogger("synapserve")

MIN_SIZE = 256  # SF_BR_MIN in static.c: smaller files are served as they are
MAX_SIZE = 64 << 20  # larger ones too: compressing them would hold the thread too long
DEBOUNCE = 0.05


def body_name(st: os.stat_result) -> str:
    """The cache name of a file's compressed body (static.c sf_br())."""
    return f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"


def quality(size: int) -> int:
    """Brotli's best for what is small; less for large files, so a changed
    file gets its body within about a second."""
    if size <= 256 << 10:
        return 11
    return 9 if size <= 4 << 20 else 5


def prepare(cache_dir: str, uid: int = -1, gid: int = -1) -> str:
    """Create cache_dir/br (as root, before privileges are dropped, owned by the
    service user). Returns cache_dir, or "" with a warning when it cannot be
    had: compression is then off, nothing else.

    As root, only directories made here are given to the service user, through
    descriptors opened without following symlinks: a service user who owned
    cache_dir before must not be able to point it (or br) at a directory of
    root's and have it given away at the next start."""
    br = os.path.join(cache_dir, "br")
    try:
        made = []
        for d in (cache_dir, br):
            try:
                os.mkdir(d, 0o750)
                made.append(d)
            except FileExistsError:
                pass
        for d in (cache_dir, br):
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                if uid >= 0 and os.geteuid() == 0 and d in made:
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
        if uid < 0 or os.geteuid() != 0:
            probe = os.path.join(br, f".probe-{os.getpid()}")
            with open(probe, "wb"):
                pass
            os.unlink(probe)
    except OSError as e:
        log.warning(
            "cache_dir %s is not usable (%s): static files are served uncompressed",
            cache_dir,
            e.strerror or e,
        )
        return ""
    return cache_dir


class _Handler(FileSystemEventHandler):
    def __init__(self, post: Callable[[], None]) -> None:
        self.post = post

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("opened", "closed_no_write"):
            self.post()


class StaticFiles:
    """Watches every static root; keeps the compressed bodies of compress roots."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self.cache_dir = ""  # "" while compression is off
        self._changed = changed
        self._lock = threading.Lock()
        self._roots: list[str] = []  # watched
        self._compress: list[str] = []
        self._types: dict[str, str] = {}
        self._wake = threading.Event()
        self._stop = False
        self._observer: Observer | None = None
        self._thread = threading.Thread(target=self._run, name="static-files", daemon=True)
        self.bodies = 0  # compressed bodies in the cache after the last pass

    def configure(self, roots: dict[str, bool], types: dict[str, str], cache_dir: str) -> None:
        """roots: every static root -> compress; cache_dir as prepare() gave it."""
        with self._lock:
            self.cache_dir = cache_dir
            self._compress = sorted(r for r, c in roots.items() if c) if self.cache_dir else []
            self._types = types
            if sorted(roots) != self._roots:
                self._roots = sorted(roots)
                self._watch()
        self._wake.set()

    def _watch(self) -> None:
        if self._observer:
            self._observer.stop()
            self._observer = None
        if not self._roots:
            return
        obs = Observer()
        obs.daemon = True
        for root in self._roots:
            try:
                obs.schedule(_Handler(self._wake.set), root, recursive=True)
            except OSError as e:
                log.warning("cannot watch %s (%s): changes show within a second", root, e)
        obs.start()
        self._observer = obs

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        with self._lock:
            if self._observer:
                self._observer.stop()
                self._observer = None
        if self._thread.is_alive():
            # no timeout: the thread calls into the engine, which is closed after this
            self._thread.join()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            # a burst of events is one pass (but a file written without
            # pause is not waited for past half a second)
            for _ in range(10):
                if not self._wake.wait(DEBOUNCE) or self._stop:
                    break
                self._wake.clear()
            if self._stop:
                return
            self._changed()  # the workers look again now
            try:
                if self._pass():
                    self._changed()  # new bodies are there to be found
            except Exception:  # a pass must never end the thread
                log.exception("compressing static files failed")

    def _pass(self) -> bool:
        """Make what is missing, drop what is stale; True if a body was written."""
        with self._lock:
            roots, types = list(self._compress), self._types
        if not self.cache_dir:
            return False
        br = os.path.join(self.cache_dir, "br")
        wanted: set[str] = set()
        wrote = False
        for root in roots:
            for path, st in _files(root):
                ext = os.path.splitext(path)[1][1:].lower()
                ctype = types.get(ext, "application/octet-stream")
                if not mime.compressible(ctype) or not MIN_SIZE <= st.st_size <= MAX_SIZE:
                    continue
                name = body_name(st)
                wanted.add(name)
                if not os.path.exists(os.path.join(br, name)):
                    if self._stop:
                        return wrote
                    wrote |= _compress(path, st, br, name)
        try:
            have = os.listdir(br)
        except OSError:
            return wrote
        for name in have:
            if name not in wanted and not name.startswith("."):
                try:
                    os.unlink(os.path.join(br, name))
                except OSError:
                    pass
        self.bodies = len(wanted)
        return wrote


def _files(root: str):
    """(path, stat) of the regular files under root that resolve inside it."""
    real_root = os.path.realpath(root)
    for d, _dirs, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            if os.path.islink(path) or os.path.realpath(d) != d:
                real = os.path.realpath(path)
                if os.path.commonpath([real, real_root]) != real_root:
                    continue  # the engine refuses to serve it: no body either
            yield path, st


def _compress(path: str, st: os.stat_result, br: str, name: str) -> bool:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
        now = os.stat(path)
    except OSError:
        return False
    if body_name(now) != name or len(data) != st.st_size:
        return False  # changed while read: the event that follows brings it back
    import brotli  # only where a route compresses: it costs memory

    body = brotli.compress(data, quality=quality(len(data)))
    if len(body) >= len(data):
        return False
    tmp = os.path.join(br, f".{name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())  # never a name for a body that a crash could empty
        os.rename(tmp, os.path.join(br, name))
        dfd = os.open(br, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        log.warning("cannot write a compressed body in %s: %s", br, e.strerror)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
