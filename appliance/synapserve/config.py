"""The configuration: read a directory of TOML files, validate it whole, build a frozen model.

PRODUCT.md section 3 is the schema and docs/configuration.md the reference as built. `load()` reads
every `*.toml` of the directory in name order, merges them, checks everything, and either returns a
`Config` or raises one `ConfigError` whose `issues` name every problem by file, line and key path.
Nothing here binds, connects or starts anything: `synapserve check` and reload both call `load()`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("synapserve")

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

# ---- issues -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: where it is and what is wrong, for an operator to read."""

    file: str  # the config directory joined with the file name, as given to load()
    key: str  # "upstreams.app.servers[2].weight"; "" when the problem is the file itself
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` holds every problem, in file and line order."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]):
        self.issues = tuple(issues)
        super().__init__("\n".join(map(str, self.issues)))


# ---- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    host: str  # an IP literal in canonical form, without brackets: "10.0.0.1", "::1"
    port: int
    family: str  # "ipv4" or "ipv6"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == "ipv6" else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse "1.2.3.4:80", "[::1]:80" or "localhost:80" (127.0.0.1); ValueError says why not."""
        bracketed = text.startswith("[")
        if bracketed:
            host, sep, port = text[1:].partition("]:")
        else:
            host, sep, port = text.rpartition(":")
            if ":" in host:
                raise ValueError('IPv6 addresses need brackets, as in "[::1]:8080"')
        if not sep:
            raise ValueError('the port is missing, as in "10.0.0.1:8080"')
        if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("the port must be a number from 1 to 65535")
        if host.lower() == "localhost" and not bracketed:
            return cls("127.0.0.1", int(port), "ipv4")
        if host in ("", "*"):
            raise ValueError('the host is missing; "0.0.0.0" means every IPv4 address, "[::]" IPv6')
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if bracketed or re.fullmatch(r"[0-9.]+", host):
                raise ValueError(f"{host} is not a valid IP address") from None
            raise ValueError(
                'host names are not supported yet: use an IP address or "localhost"'
            ) from None
        if bracketed and ip.version == 4:
            raise ValueError("only IPv6 addresses go in brackets")
        return cls(str(ip), int(port), f"ipv{ip.version}")


@dataclass(frozen=True, slots=True)
class Server:
    workers: int | str  # as written: an integer >= 1, or "auto"
    user: str
    max_connections: int
    engine: str  # "auto" | "io_uring" | "portable"
    cache_dir: str  # compressed bodies of static files go in cache_dir/br

    @property
    def worker_count(self) -> int:
        """`workers` with "auto" resolved to the number of online CPUs."""
        return (os.cpu_count() or 1) if self.workers == "auto" else int(self.workers)


@dataclass(frozen=True, slots=True)
class Admin:
    bind: Address


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "debug" | "info" | "warning" | "error"
    access: str  # "stdout", "off", or an absolute path
    access_format: str  # "combined" | "json"


@dataclass(frozen=True, slots=True)
class Limits:
    header_bytes: int
    headers: int
    body_bytes: int  # 0: no limit
    client_header_timeout_ms: int
    client_body_timeout_ms: int
    keepalive_timeout_ms: int


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: str  # absolute path
    key: str  # absolute path


@dataclass(frozen=True, slots=True)
class Tls:
    certificates: tuple[Certificate, ...]
    min_version: str  # "1.2" | "1.3"
    ktls: str  # "auto" | "off" | "require"


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    binds: tuple[Address, ...]
    tls: Tls | None


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    address: Address
    weight: int
    backup: bool


@dataclass(frozen=True, slots=True)
class Health:
    path: str
    interval_ms: int
    timeout_ms: int
    rise: int
    fall: int
    expect: tuple[int, ...]  # every accepted status code, ascending


@dataclass(frozen=True, slots=True)
class Passive:
    max_fails: int  # 0: passive ejection off
    fail_timeout_ms: int


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    balance: str  # "round_robin" | "least_conn" | "ip_hash" | "random" | "ewma"
    servers: tuple[UpstreamServer, ...]
    keepalive: int
    connect_timeout_ms: int
    read_timeout_ms: int
    send_timeout_ms: int
    retries: int
    slow_start_ms: int  # 0: off
    health: Health | None
    passive: Passive


@dataclass(frozen=True, slots=True)
class Static:
    root: str  # absolute path of an existing directory
    index: str
    compress: bool


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    upstream: str | None  # exactly one of upstream and static is set
    static: Static | None


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    hosts: tuple[str, ...]  # lower case; "*.example.com" wildcards; "*" for the default site
    listeners: tuple[str, ...]  # resolved: every listener when the file names none
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class Config:
    server: Server
    admin: Admin
    log: Log
    limits: Limits
    listeners: dict[str, Listener]
    upstreams: dict[str, Upstream]
    sites: dict[str, Site]
    files: tuple[str, ...]

    def summary(self) -> str:
        """One line for `synapserve check`."""
        binds = sum(len(x.binds) for x in self.listeners.values())
        servers = sum(len(x.servers) for x in self.upstreams.values())
        routes = sum(len(x.routes) for x in self.sites.values())
        return (
            f"ok: {_count(len(self.files), 'file')}, "
            f"{_count(len(self.listeners), 'listener')} ({_count(binds, 'address', 'addresses')}), "
            f"{_count(len(self.upstreams), 'upstream')} ({_count(servers, 'server')}), "
            f"{_count(len(self.sites), 'site')} ({_count(routes, 'route')})"
        )


def _count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# ---- loading ------------------------------------------------------------------------------------

_SINGLE = ("server", "admin", "log", "limits")
_NAMED = ("listeners", "upstreams", "sites")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class _Source:
    file: str
    data: dict[str, Any]
    lines: dict[tuple, int]


@dataclass
class _Ctx:
    """Where validation reports to: the shared issue list, and the file being checked."""

    issues: list[Issue]
    base: str  # the config directory: relative paths in the files are relative to it
    names: dict[str, list[str]] = field(default_factory=dict)  # defined names, per section
    file: str = ""
    lines: dict[tuple, int] = field(default_factory=dict)

    def at(self, src: _Source) -> _Ctx:
        return dataclasses.replace(self, file=src.file, lines=src.lines)

    def line(self, path: tuple) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def where(self, path: tuple) -> str:
        line = self.line(path)
        return self.file if line is None else f"{self.file}:{line}"

    def error(self, path: tuple, message: str) -> None:
        self.issues.append(Issue(self.file, _key(path), message, self.line(path)))


def load(config_dir: str | os.PathLike[str]) -> Config:
    """Read, merge and validate every *.toml in config_dir; raise ConfigError listing all issues."""
    directory = os.fspath(config_dir)
    ctx = _Ctx([], directory, file=directory)
    files, sources = _read(ctx, directory)
    config = None
    if not ctx.issues:  # after a syntax error the merged whole would only give misleading issues
        config = _validate(ctx, *_merge(ctx, sources), files)
    if ctx.issues:
        rank = {file: i for i, file in enumerate(files)}
        raise ConfigError(sorted(ctx.issues, key=lambda x: (rank.get(x.file, -1), x.line or 0)))
    assert config is not None
    return config


def _read(ctx: _Ctx, directory: str) -> tuple[tuple[str, ...], list[_Source]]:
    """Parse each *.toml file (dot files excepted: editors' lock files) in name order."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".toml"))
    except FileNotFoundError:
        ctx.error((), "no such directory")
        return (), []
    except OSError as e:
        ctx.error((), f"cannot read this directory: {e.strerror}")
        return (), []
    paths = [os.path.join(directory, n) for n in names if not n.startswith(".")]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        ctx.error((), "no *.toml files in this directory")
    sources = []
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
            sources.append(_Source(path, tomllib.loads(text), _key_lines(text)))
        except OSError as e:
            ctx.issues.append(Issue(path, "", f"cannot read: {e.strerror}"))
        except UnicodeDecodeError as e:
            ctx.issues.append(Issue(path, "", f"not UTF-8 text (byte {e.start})"))
        except tomllib.TOMLDecodeError as e:
            ctx.issues.append(_syntax_issue(path, str(e)))
    return tuple(paths), sources


def _syntax_issue(path: str, text: str) -> Issue:
    """tomllib's "Invalid value (at line 3, column 8)" as an Issue on line 3."""
    m = re.search(r" \(at line (\d+), column (\d+)\)$", text)
    if not m:
        text = text.replace("(at end of document)", "(at the end of the file)")
        return Issue(path, "", f"invalid TOML: {text[:1].lower()}{text[1:]}")
    reason = text[: m.start()]
    return Issue(
        path, "", f"invalid TOML: {reason[:1].lower()}{reason[1:]} (column {m[2]})", int(m[1])
    )


def _merge(ctx: _Ctx, sources: list[_Source]) -> tuple[dict, dict]:
    """Merge the files: ({"server": (ctx, raw)}, {"listeners": {name: (ctx, raw)}, ...})."""
    single: dict[str, tuple[_Ctx, Any]] = {}
    named: dict[str, dict[str, tuple[_Ctx, Any]]] = {s: {} for s in _NAMED}
    for src in sources:
        fctx = ctx.at(src)
        for key, value in src.data.items():
            if key in single:
                first = single[key][0].where((key,))
                fctx.error(
                    (key,), f"[{key}] may appear only once in all files; it is also in {first}"
                )
            elif key in _SINGLE:
                single[key] = (fctx, value)
            elif key not in _NAMED:
                fctx.error((key,), "unknown section" + _did_you_mean(key, _SINGLE + _NAMED))
            elif not isinstance(value, dict):
                fctx.error((key,), f"expected tables such as [{key}.NAME], got {_show(value)}")
            else:
                for name, body in value.items():
                    if name in named[key]:
                        first = named[key][name][0].where((key, name))
                        fctx.error((key, name), f"defined twice: it is also in {first}")
                    else:
                        named[key][name] = (fctx, body)
    return single, named


def _validate(ctx: _Ctx, single: dict, named: dict, files: tuple[str, ...]) -> Config | None:
    """Validate every section, then what spans sections; the model if nothing was wrong."""
    ctx.names.update({s: list(named[s]) for s in _NAMED})
    for section in _NAMED:
        for name, (nctx, _) in named[section].items():
            if not _NAME.fullmatch(name):
                nctx.error((section, name), 'invalid name: use 1 to 64 of A-Z a-z 0-9 "_" "-"')
    parts = {key: fn(*single.get(key, (ctx, {}))) for key, fn in _SECTIONS.items()}
    for section, fn in _NAMED_SECTIONS.items():
        built = {name: fn(nctx, name, raw) for name, (nctx, raw) in named[section].items()}
        parts[section] = {name: x for name, x in built.items() if x is not None}
    if not named["listeners"] and not any(x.key.startswith("listeners") for x in ctx.issues):
        ctx.error(("listeners",), "no listener is defined: add one, as in [listeners.http]")
    _check_binds(ctx, single, named, parts["admin"], parts["listeners"])
    _check_hosts(named, parts["sites"])
    if ctx.issues or any(x is None for x in parts.values()):
        return None
    return Config(**parts, files=files)


# ---- values: each check takes (ctx, key path, value), returns the model value, and either
# raises _Bad (the caller reports it at the path) or reports deeper issues itself and returns
# _FAILED.


class _Bad(Exception):
    """A value is wrong; the message says why, the caller adds file, line and key."""


_FAILED: Any = object()  # a value whose issues are already reported
_REQUIRED: Any = object()  # a schema default: the key must be written
_Check = Callable[[_Ctx, tuple, Any], Any]


def _show(v: Any) -> str:
    """A value as it was written in TOML, or what kind of value it is."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "an array" if v else "an empty array"
    return "a table" if isinstance(v, dict) else "a date/time"


def _expected(what: str, v: Any, hint: str = "") -> _Bad:
    return _Bad(f"expected {what}, got {_show(v)}{hint}")


def _did_you_mean(word: Any, choices: Any) -> str:
    import difflib  # only for a config with a mistake in it

    close = difflib.get_close_matches(word, list(choices), n=1) if isinstance(word, str) else []
    return f"; did you mean '{close[0]}'?" if close else ""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _run(ctx: _Ctx, path: tuple, check: _Check, value: Any) -> Any:
    try:
        return check(ctx, path, value)
    except _Bad as e:
        ctx.error(path, str(e))
        return _FAILED


def _fields(ctx: _Ctx, path: tuple, raw: Any, schema: dict, what: str = "a table") -> tuple:
    """Check a table against {key: (check, default)}: (converted values, whether all passed).

    A default of None leaves an absent key None; _REQUIRED makes its absence an issue."""
    if not isinstance(raw, dict):
        raise _expected(what, raw)
    for key in raw:
        if key not in schema:
            ctx.error((*path, key), "unknown key" + _did_you_mean(key, schema))
    values, ok = {}, True
    for key, (check, default) in schema.items():
        if key not in raw and default is _REQUIRED:
            ctx.error((*path, key), "missing: this key is required")
            ok = False
        elif key not in raw and default is None:
            values[key] = None
        elif (got := _run(ctx, (*path, key), check, raw.get(key, default))) is _FAILED:
            ok = False
        else:
            values[key] = got
    return values, ok


def _each(ctx: _Ctx, path: tuple, v: Any, check: _Check, what: str) -> list:
    """Check every element of a non-empty array; _FAILED where one was wrong."""
    if not isinstance(v, list) or not v:
        raise _expected(f"a non-empty array of {what}", v)
    return [_run(ctx, (*path, i), check, item) for i, item in enumerate(v)]


def _list(check: _Check, what: str, unique: bool = True) -> _Check:
    """A non-empty array of values each passing check, and distinct when unique."""

    def run(ctx: _Ctx, path: tuple, v: Any) -> Any:
        items, seen = _each(ctx, path, v, check, what), {}
        for i, item in enumerate(items):
            if unique and item is not _FAILED and seen.setdefault(str(item), i) != i:
                shown = _show(item) if isinstance(item, str) else item
                ctx.error((*path, i), f"{shown} is already listed at {path[-1]}[{seen[str(item)]}]")
                items[i] = _FAILED
        return _FAILED if any(x is _FAILED for x in items) else tuple(items)

    return run


def _int(lo: int, hi: int | None = None) -> _Check:
    what = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"

    def check(ctx: _Ctx, path: tuple, v: Any) -> int:
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            raise _expected(what, v)
        return v

    return check


def _bool(ctx: _Ctx, path: tuple, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _expected("true or false", v)
    return v


def _choice(*options: str, suggest: bool = True) -> _Check:
    what = "one of " + ", ".join(map(_show, options))

    def check(ctx: _Ctx, path: tuple, v: Any) -> str:
        if isinstance(v, str) and v in options:
            return v
        quoted = f'; write it as a string: "{v}"' if str(v) in options else ""
        raise _expected(what, v, quoted or (_did_you_mean(v, options) if suggest else ""))

    return check


def _workers(ctx: _Ctx, path: tuple, v: Any) -> int | str:
    if v == "auto" or (_is_int(v) and v >= 1):
        return v
    raise _expected('an integer >= 1 or "auto"', v)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DAY_MS = 86_400_000  # longest duration: a day keeps every duration in 32 bits for the data plane


def _ms(ms: int) -> str:
    """Milliseconds written back as a duration: 1500 -> "1500ms", 2000 -> "2s"."""
    for unit in ("h", "m", "s"):
        if ms and ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def _duration(lo_ms: int = 1) -> _Check:
    what = 'a duration such as "250ms", "2s", "5m" or "1h"'

    def check(ctx: _Ctx, path: tuple, v: Any) -> int:
        m = _DURATION.fullmatch(v) if isinstance(v, str) else None
        if not m:
            raise _expected(what, v, f' (a duration needs a unit: "{v}s")' if _is_int(v) else "")
        # exact: "1.5s" is 15 * 1000 / 10 ms (decimal is a megabyte of memory for this)
        whole, _, frac = m[1].partition(".")
        ms, rest = divmod(int(whole + frac) * _UNIT_MS[m[2]], 10 ** len(frac))
        if rest:
            raise _Bad(f"{_show(v)} is not a whole number of milliseconds")
        if not lo_ms <= ms <= _DAY_MS:
            raise _expected(f"a duration from {_ms(lo_ms)} to 24h", v)
        return ms

    return check


_SIZE = re.compile(r"(\d+)([kmg]?)", re.ASCII | re.IGNORECASE)
_UNIT_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(lo: int = 0, hi: int | None = None, ceiling: str = "") -> _Check:
    """A size in bytes; `ceiling`, when given, explains why hi is a hard limit."""
    what = 'a size such as 4096, "16k", "1m" or "1g"'

    def check(ctx: _Ctx, path: tuple, v: Any) -> int:
        if _is_int(v):
            n = v
        elif isinstance(v, str) and (m := _SIZE.fullmatch(v)):
            n = int(m[1]) * _UNIT_BYTES[m[2].lower()]
        else:
            raise _expected(what, v)
        if hi is not None and n > hi and ceiling:
            raise _Bad(f"{_show(v)} is over the hard ceiling of {hi // 1024}k: {ceiling}")
        if n < lo or (hi is not None and n > hi):
            raise _expected(
                f"a size from {lo // 1024}k to {hi // 1024}k" if hi else "a size >= 0", v
            )
        return n

    return check


def _address(ctx: _Ctx, path: tuple, v: Any) -> Address:
    if not isinstance(v, str):
        raise _expected('an address such as "10.0.0.1:8080" or "[::1]:8080"', v)
    try:
        return Address.parse(v)
    except ValueError as e:
        raise _Bad(f"invalid address {_show(v)}: {e}") from None


_address_list = _list(_address, "addresses")


def _binds(ctx: _Ctx, path: tuple, v: Any) -> tuple[Address, ...]:
    if isinstance(v, str):
        return (_address(ctx, path, v),)
    if not isinstance(v, list):
        raise _expected('an address such as "0.0.0.0:80", or an array of addresses', v)
    return _address_list(ctx, path, v)


def _text(what: str, pattern: str) -> _Check:
    def check(ctx: _Ctx, path: tuple, v: Any) -> str:
        if not isinstance(v, str) or not re.fullmatch(pattern, v):
            raise _expected(what, v)
        return v

    return check


_user = _text("a user name", r"[^\s:]+")
_url_path = _text('a path starting with "/" (no spaces, "?" or "#")', r"/[^\s?#]*")
_file_name = _text('a file name such as "index.html"', r"[^/\s]+")
_access = _text('"stdout", "off" or an absolute path', r"stdout|off|/.*")
_abs_dir = _text("an absolute path", r"/.*")

_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*", re.ASCII)


def _host(ctx: _Ctx, path: tuple, v: Any) -> str:
    if v == "*" or (isinstance(v, str) and len(v) <= 253 and _HOST.fullmatch(v.lower())):
        return v.lower()
    hint = " (a host has no port: listeners choose ports)" if ":" in str(v) else ""
    if isinstance(v, str) and v.startswith("."):
        hint = f' (write both "{v[1:]}" and "*{v}")'
    raise _expected('a host name such as "example.com" or "*.example.com", or "*"', v, hint)


def _status_codes(v: Any) -> range:
    """ "2xx" -> 200..299; 404 or "404" -> 404 alone."""
    text = str(v).lower() if isinstance(v, str) or _is_int(v) else ""
    if re.fullmatch(r"[1-5]xx", text):
        return range(int(text[0]) * 100, int(text[0]) * 100 + 100)
    if re.fullmatch(r"[1-5][0-9][0-9]", text):
        return range(int(text), int(text) + 1)
    raise _expected('a status class "1xx" to "5xx", or a status code from 100 to 599', v)


def _expect(ctx: _Ctx, path: tuple, v: Any) -> tuple[int, ...]:
    if not isinstance(v, list):
        return tuple(_status_codes(v))
    codes = _each(ctx, path, v, lambda c, p, x: _status_codes(x), "status classes or codes")
    if any(r is _FAILED for r in codes):
        return _FAILED
    return tuple(sorted({c for r in codes for c in r}))


def _path_check(kind: str, test: Callable[[str], bool]) -> _Check:
    """An existing, readable file or directory; relative to the config directory."""

    def check(ctx: _Ctx, path: tuple, v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise _expected(f"the path of a {kind}", v)
        where = os.path.join(ctx.base, v)
        if not os.path.exists(where):
            raise _Bad(f"{kind} not found: {_show(where)}")
        if not test(where):
            raise _Bad(f"not a {kind}: {_show(where)}")
        if not os.access(where, os.R_OK | (os.X_OK if kind == "directory" else 0)):
            raise _Bad(f"cannot read {_show(where)}: permission denied")
        return os.path.abspath(where)

    return check


_file = _path_check("file", os.path.isfile)
_directory = _path_check("directory", os.path.isdir)


def _ref(section: str) -> _Check:
    """The name of a listener or upstream defined in any file."""

    def check(ctx: _Ctx, path: tuple, v: Any) -> str:
        names = ctx.names[section]
        if not isinstance(v, str):
            raise _expected(f"the name of one of the {section}", v)
        if v not in names:
            hint = _did_you_mean(v, names) or f" (defined: {', '.join(names) or 'none'})"
            raise _Bad(f"unknown {section[:-1]} {_show(v)}{hint}")
        return v

    return check


# ---- sections -----------------------------------------------------------------------------------

_SERVER = {
    "workers": (_workers, "auto"),
    "user": (_user, "synapserve"),
    "max_connections": (_int(1, 1_000_000), 65536),
    "engine": (_choice("auto", "io_uring", "portable"), "auto"),
    "cache_dir": (_abs_dir, "/var/cache/synapserve"),
}
_ADMIN = {"bind": (_address, "127.0.0.1:9180")}
_LOG = {
    "level": (_choice("debug", "info", "warning", "error"), "info"),
    "access": (_access, "/var/log/synapserve/access.log"),
    "access_format": (_choice("combined", "json"), "combined"),
}
_HEAD_CEILING = "a request head is parsed in one buffer of at most 64 KiB"
_LIMITS = {
    "header_bytes": (_size(1024, 65536, _HEAD_CEILING), "16k"),
    "headers": (_int(1, 64), 64),
    "body_bytes": (_size(), "100m"),
    "client_header_timeout": (_duration(), "10s"),
    "client_body_timeout": (_duration(), "60s"),
    "keepalive_timeout": (_duration(), "75s"),
}


def _server(ctx: _Ctx, raw: Any) -> Server | None:
    return _section(ctx, ("server",), raw, _SERVER, lambda v: Server(**v))


def _admin(ctx: _Ctx, raw: Any) -> Admin | None:
    return _section(ctx, ("admin",), raw, _ADMIN, lambda v: Admin(**v))


def _log(ctx: _Ctx, raw: Any) -> Log | None:
    return _section(ctx, ("log",), raw, _LOG, lambda v: Log(**v))


def _limits(ctx: _Ctx, raw: Any) -> Limits | None:
    def build(v: dict) -> Limits:
        return Limits(
            header_bytes=v["header_bytes"],
            headers=v["headers"],
            body_bytes=v["body_bytes"],
            client_header_timeout_ms=v["client_header_timeout"],
            client_body_timeout_ms=v["client_body_timeout"],
            keepalive_timeout_ms=v["keepalive_timeout"],
        )

    return _section(ctx, ("limits",), raw, _LIMITS, build)


def _section(ctx: _Ctx, path: tuple, raw: Any, schema: dict, build: Callable) -> Any:
    """Check a table and build its model; None when something was wrong (and reported)."""
    try:
        values, ok = _fields(ctx, path, raw, schema)
    except _Bad as e:
        ctx.error(path, str(e))
        return None
    return build(values) if ok else None


_SECTIONS = {"server": _server, "admin": _admin, "log": _log, "limits": _limits}

# -- listeners


def _certificate(ctx: _Ctx, path: tuple, raw: Any) -> Certificate:
    what = 'a table such as { cert = "site.pem", key = "site.key" }'
    values, ok = _fields(
        ctx, path, raw, {"cert": (_file, _REQUIRED), "key": (_file, _REQUIRED)}, what
    )
    if not ok:
        return _FAILED
    problem = _certificate_problem(ctx, path, values["cert"], values["key"])
    if problem:
        ctx.error((*path, "cert"), problem)
        return _FAILED
    return Certificate(**values)


EXPIRY_WARNING_DAYS = 14


def _certificate_problem(ctx: _Ctx, path: tuple, cert: str, key: str) -> str:
    """Why a certificate and its key cannot serve (unreadable, not matching, expired), or "".
    One that expires within EXPIRY_WARNING_DAYS is logged as a warning."""
    import ssl  # here: only a config with TLS pays for it
    import time

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as e:
        # the wrong key of the certificate's type: KEY_VALUES_MISMATCH; of another type
        # (an EC key for an RSA certificate): NO_CERTIFICATE_ASSIGNED
        if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            return f"the key {_show(key)} does not belong to the certificate {_show(cert)}"
        why = e.reason or e.strerror or str(e)
        return f"cannot load the certificate {_show(cert)} with the key {_show(key)}: {why}"
    except OSError as e:
        return f"cannot read {_show(cert)} or {_show(key)}: {e.strerror}"
    try:
        not_after = ssl.cert_time_to_seconds(ssl._ssl._test_decode_cert(cert)["notAfter"])
    except (ssl.SSLError, KeyError, ValueError, AttributeError):
        return ""  # loadable is what matters; the date could not be read here
    left = not_after - time.time()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
    if left <= 0:
        return f"the certificate {_show(cert)} expired on {when}"
    if left < EXPIRY_WARNING_DAYS * 86400:
        log.warning(
            "%s: %s: the certificate %s expires on %s, in %d day(s)",
            ctx.where(path),
            _key(path),
            _show(cert),
            when,
            int(left // 86400),
        )
    return ""


_TLS = {
    "certificates": (_list(_certificate, "certificates", unique=False), _REQUIRED),
    "min_version": (_choice("1.2", "1.3", suggest=False), "1.2"),
    "ktls": (_choice("auto", "off", "require"), "auto"),
}


def _tls(ctx: _Ctx, path: tuple, raw: Any) -> Tls:
    values, ok = _fields(ctx, path, raw, _TLS)
    return Tls(**values) if ok else _FAILED


_LISTENER = {"bind": (_binds, _REQUIRED), "tls": (_tls, None)}


def _listener(ctx: _Ctx, name: str, raw: Any) -> Listener | None:
    return _section(
        ctx, ("listeners", name), raw, _LISTENER, lambda v: Listener(name, v["bind"], v["tls"])
    )


# -- upstreams

_UPSTREAM_SERVER = {
    "address": (_address, _REQUIRED),
    "weight": (_int(1, 1000), 1),
    "backup": (_bool, False),
}


def _upstream_server(ctx: _Ctx, path: tuple, raw: Any) -> UpstreamServer:
    what = 'a table such as { address = "10.0.0.1:8080" }'
    values, ok = _fields(ctx, path, raw, _UPSTREAM_SERVER, what)
    return UpstreamServer(**values) if ok else _FAILED


def _servers(ctx: _Ctx, path: tuple, v: Any) -> tuple[UpstreamServer, ...]:
    servers, seen = _each(ctx, path, v, _upstream_server, "servers"), {}
    for i, s in enumerate(servers):
        if s is not _FAILED and seen.setdefault(s.address, i) != i:
            first = seen[s.address]
            ctx.error((*path, i, "address"), f"{s.address} is already listed at servers[{first}]")
            servers[i] = _FAILED
    if any(s is _FAILED for s in servers):
        return _FAILED
    if all(s.backup for s in servers):
        raise _Bad("every server is a backup: at least one needs backup = false")
    return tuple(servers)


_HEALTH = {
    "path": (_url_path, "/healthz"),
    "interval": (_duration(), "2s"),
    "timeout": (_duration(), "1s"),
    "rise": (_int(1, 100), 2),
    "fall": (_int(1, 100), 3),
    "expect": (_expect, "2xx"),
}


def _health(ctx: _Ctx, path: tuple, raw: Any) -> Health:
    v, ok = _fields(ctx, path, raw, _HEALTH)
    if ok and v["timeout"] >= v["interval"]:
        interval, timeout = _ms(v["interval"]), _ms(v["timeout"])
        ctx.error((*path, "timeout"), f"{timeout} must be shorter than the interval ({interval})")
        ok = False
    if not ok:
        return _FAILED
    return Health(v["path"], v["interval"], v["timeout"], v["rise"], v["fall"], v["expect"])


_PASSIVE = {"max_fails": (_int(0, 1000), 3), "fail_timeout": (_duration(), "10s")}


def _passive(ctx: _Ctx, path: tuple, raw: Any) -> Passive:
    v, ok = _fields(ctx, path, raw, _PASSIVE)
    return Passive(v["max_fails"], v["fail_timeout"]) if ok else _FAILED


_UPSTREAM = {
    "balance": (_choice("round_robin", "least_conn", "ip_hash", "random", "ewma"), "round_robin"),
    "servers": (_servers, _REQUIRED),
    "keepalive": (_int(0, 10_000), 32),
    "connect_timeout": (_duration(), "2s"),
    "read_timeout": (_duration(), "60s"),
    "send_timeout": (_duration(), "60s"),
    "retries": (_int(0, 10), 2),
    "slow_start": (_duration(0), "0s"),
    "health": (_health, None),
    "passive": (_passive, {}),
}


def _upstream(ctx: _Ctx, name: str, raw: Any) -> Upstream | None:
    def build(v: dict) -> Upstream:
        return Upstream(
            name=name,
            balance=v["balance"],
            servers=v["servers"],
            keepalive=v["keepalive"],
            connect_timeout_ms=v["connect_timeout"],
            read_timeout_ms=v["read_timeout"],
            send_timeout_ms=v["send_timeout"],
            retries=v["retries"],
            slow_start_ms=v["slow_start"],
            health=v["health"],
            passive=v["passive"],
        )

    return _section(ctx, ("upstreams", name), raw, _UPSTREAM, build)


# -- sites

_STATIC = {
    "root": (_directory, _REQUIRED),
    "index": (_file_name, "index.html"),
    "compress": (_bool, False),
}


def _static(ctx: _Ctx, path: tuple, raw: Any) -> Static:
    values, ok = _fields(ctx, path, raw, _STATIC, 'a table such as { root = "/var/www" }')
    return Static(**values) if ok else _FAILED


_ROUTE = {
    "path": (_url_path, _REQUIRED),
    "upstream": (_ref("upstreams"), None),
    "static": (_static, None),
}


def _route(ctx: _Ctx, path: tuple, raw: Any) -> Route:
    values, ok = _fields(ctx, path, raw, _ROUTE)
    handlers = [k for k in ("upstream", "static") if k in raw]
    if len(handlers) != 1:
        both = "has both upstream and static: a route has exactly one of them"
        ctx.error(
            path, both if handlers else 'needs upstream = "NAME" or static = { root = "DIR" }'
        )
        ok = False
    return Route(**values) if ok else _FAILED


def _routes(ctx: _Ctx, path: tuple, v: Any) -> tuple[Route, ...]:
    routes, seen = _each(ctx, path, v, _route, "routes, as in [[sites.NAME.routes]]"), {}
    for i, raw in enumerate(v):
        p = raw.get("path") if isinstance(raw, dict) else None
        if isinstance(p, str) and seen.setdefault(p, i) != i:
            ctx.error((*path, i, "path"), f"{_show(p)} is already routed by routes[{seen[p]}]")
            routes[i] = _FAILED
    return _FAILED if any(r is _FAILED for r in routes) else tuple(routes)


_SITE = {
    "hosts": (_list(_host, "host names"), _REQUIRED),
    "listeners": (_list(_ref("listeners"), "listener names"), None),
    "routes": (_routes, _REQUIRED),
}


def _site(ctx: _Ctx, name: str, raw: Any) -> Site | None:
    def build(v: dict) -> Site:
        return Site(name, v["hosts"], v["listeners"] or tuple(ctx.names["listeners"]), v["routes"])

    return _section(ctx, ("sites", name), raw, _SITE, build)


_NAMED_SECTIONS = {"listeners": _listener, "upstreams": _upstream, "sites": _site}

# ---- what spans sections ------------------------------------------------------------------------


def _overlap(a: Address, b: Address) -> bool:
    """Whether binding both fails: the same address and port, or a wildcard of the family."""
    if (a.port, a.family) != (b.port, b.family):
        return False
    return a.host == b.host or "0.0.0.0" in (a.host, b.host) or "::" in (a.host, b.host)


def _check_binds(
    ctx: _Ctx, single: dict, named: dict, admin: Admin | None, listeners: dict
) -> None:
    """No address may be bound twice, across listeners and the admin endpoint."""
    taken: list[tuple[Address, str]] = []
    if admin:
        actx = single["admin"][0] if "admin" in single else None
        where = actx.where(("admin", "bind")) if actx else "the default"
        taken.append((admin.bind, f"admin.bind ({where})"))
    for name, listener in listeners.items():
        lctx, raw = named["listeners"][name]
        for i, addr in enumerate(listener.binds):
            path = ("listeners", name, "bind", *((i,) if isinstance(raw["bind"], list) else ()))
            for other, who in taken:
                if _overlap(addr, other):
                    how = "is already bound by" if addr == other else f"overlaps {other}, bound by"
                    lctx.error(path, f"{addr} {how} {who}")
                    break
            taken.append((addr, f"{_key(path)} ({lctx.where(path)})"))


def _check_hosts(named: dict, sites: dict[str, Site]) -> None:
    """On each listener a host belongs to one site, and "*" (the default site) to one at most."""
    owner: dict[tuple[str, str], tuple[str, str]] = {}
    for name, site in sites.items():
        sctx = named["sites"][name][0]
        for i, host in enumerate(site.hosts):
            path = ("sites", name, "hosts", i)
            clash = next(((x, owner[x, host]) for x in site.listeners if (x, host) in owner), None)
            for x in site.listeners:
                owner.setdefault((x, host), (f"sites.{name}", sctx.where(path)))
            if clash:
                listener, (other, where) = clash
                what = '"*" (the default site)' if host == "*" else _show(host)
                on = f"on listener {_show(listener)}"
                sctx.error(path, f"{what} is already claimed by {other} ({where}) {on}")


# ---- key paths and their lines ------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\''
    r"|#[^\n]*|[\[\]{},=]|[^\s\[\]{},=#\"']+"
)


def _key(path: tuple) -> str:
    """("upstreams", "app", "servers", 2, "weight") -> "upstreams.app.servers[2].weight"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = part if _BARE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            out += f".{part}" if out else part
    return out


def _key_lines(text: str) -> dict[tuple, int]:
    """Where each key path of a valid TOML text is written, such as
    {("upstreams", "app", "servers", 2, "weight"): 14}; array elements map to the line they
    start on. A small structural scan over tokens, best effort: it only points at lines."""
    toks, line, pos = [], 1, 0
    for m in _TOKEN.finditer(text):
        line, pos = line + text.count("\n", pos, m.start()), m.start()
        if m[0][0] != "#":
            toks.append((m[0], line))
    toks.append(("", line))  # the end
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}  # arrays of tables: the index of the last [[header]] seen

    def parts(tok: str) -> list[str]:
        return [tok[1:-1]] if tok[0] in "\"'" else [p for p in tok.split(".") if p]

    def header(parts_: list[str], aot: bool, line: int) -> tuple:
        path: tuple = ()
        for k, part in enumerate(parts_):
            path += (part,)
            lines.setdefault(path, line)
            if aot and k == len(parts_) - 1:
                counts[path] = counts.get(path, -1) + 1
            if path in counts:
                path += (counts[path],)
                lines.setdefault(path, line)
        return path

    def key(i: int, base: tuple) -> tuple[int, tuple]:  # a dotted key: (index after "=", path)
        path, first = base, toks[i][1]
        while toks[i][0] not in ("=", "", "[", "]", "{", "}"):
            for part in parts(toks[i][0]):
                path = (*path, part)
                lines.setdefault(path, first)
            i += 1
        return i + (toks[i][0] == "="), path

    def value(i: int, path: tuple) -> int:  # the index after the value
        opening, n = toks[i][0], 0
        if opening not in ("[", "{"):
            return i + 1
        i += 1
        while toks[i][0] not in ("]", "}", ""):
            if toks[i][0] == ",":
                i += 1
            elif opening == "[":
                lines.setdefault((*path, n), toks[i][1])
                i, n = value(i, (*path, n)), n + 1
            else:
                i, sub = key(i, path)
                i = value(i, sub)
        return i + 1

    table, i = (), 0
    try:
        while toks[i][0]:
            tok, line = toks[i]
            if tok == "[" and (i == 0 or toks[i - 1][1] < line):  # a [table] or [[array]] header
                aot = toks[i + 1][0] == "["
                j = i + 1 + aot
                while toks[j][0] not in ("]", ""):
                    j += 1
                table = header([p for t, _ in toks[i + 1 + aot : j] for p in parts(t)], aot, line)
                i = j + 1 + aot
            else:
                i, path = key(i, table)
                i = value(i, path)
    except (IndexError, RecursionError):  # not the TOML expected: keep what was found
        pass
    return lines
