"""Watching the config directory (watchdog): editors save by rename, so the
directory is watched, not the files; events are posted to the supervisor,
which debounces them (never on the observer thread). The directories of the
TLS certificates and keys the config names are watched too, for those files
only, so that a rotated certificate is reloaded like an edited config."""

from __future__ import annotations

import os
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class _Handler(FileSystemEventHandler):
    def __init__(self, post: Callable[[], None]) -> None:
        self.post = post

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(str(p).endswith(".toml") for p in paths) or event.is_directory:
            self.post()


class _FilesHandler(FileSystemEventHandler):
    def __init__(self, files: frozenset[str], post: Callable[[], None]) -> None:
        self.files = files
        self.post = post

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(os.fsdecode(p) in self.files for p in paths if p):
            self.post()


class ConfigWatcher:
    def __init__(self, directory: str, post: Callable[[], None]) -> None:
        self._post = post
        self._directory = os.path.abspath(directory)
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(post), directory, recursive=False)
        self._extra: list = []  # watches of certificate directories
        self._files: frozenset[str] = frozenset()

    def start(self) -> None:
        self._observer.start()

    def watch_files(self, paths) -> None:
        """Watch these files too (absolute paths), through their directories."""
        files = frozenset(os.path.abspath(p) for p in paths)
        if files == self._files:
            return
        self._files = files
        for w in self._extra:
            self._observer.unschedule(w)
        self._extra = []
        for d in sorted({os.path.dirname(f) for f in files}):
            handler = _FilesHandler(files, self._post)
            try:
                self._extra.append(self._observer.schedule(handler, d, recursive=False))
            except OSError:
                pass  # a directory that went away: the next reload says why

    def stop(self) -> None:
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=2)
