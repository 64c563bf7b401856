"""Watching the config directory (watchdog): editors save by rename, so the
directory is watched, not the files; events are posted to the supervisor,
which debounces them (never on the observer thread)."""

from __future__ import annotations

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


class ConfigWatcher:
    def __init__(self, directory: str, post: Callable[[], None]) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(post), directory, recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=2)
