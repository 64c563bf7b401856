"""The static-file handler end to end (issue 5; the contract is docs/static-files.md): which file a
path names and what is refused, the answer's fields, every conditional and range case, HEAD,
Brotli and identity bodies, files changed, replaced and truncated on disk (also while being sent),
a 1 GiB file by splice, keep-alive and pipelining beside an upstream route, and the metrics.

Most tests share one proxy over one tree (module scope; they only read it). Tests that change
files, or count exactly, start their own. Every fixture file has a fixed mtime, so Last-Modified
is known; ETags are computed from os.stat as the doc spells them.
"""

from __future__ import annotations

import concurrent.futures as cf
import email.utils
import os
import socket
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import brotli
import pytest
from harness import (
    DEFAULT_HOST,
    Backend,
    Proxy,
    ProxySpec,
    Response,
    build_request,
    wait_for,
)
from static_util import (
    ASSETS_ROOT_MARKER,
    BIG_SIZE,
    BR_WITHIN,
    FIXED_MTIME_NS,
    FRESH_WITHIN,
    SECRET,
    SMALL_SIZE,
    Download,
    MiB,
    Tree,
    build_tree,
    cache_name,
    etag,
    etag_br,
    file_sha256,
    http_date,
    last_modified,
    media_type,
    metric0,
    mime_type,
    replace_file,
    rewrite_in_place,
    text_body,
    vary_tokens,
    wait_br,
    write_file,
    write_pattern_file,
)

GiB = 1 << 30
LM_SECONDS = FIXED_MTIME_NS // 1_000_000_000  # Last-Modified of every fixture file
AE_BR = [("Accept-Encoding", "br")]
PASSWD_MARK = b"root:x:0:0:"

# ---- the shared proxy ---------------------------------------------------------------------------


@dataclass
class Site:
    proxy: Proxy
    tree: Tree
    backend: Backend
    cache_dir: str

    def get(self, path: str, headers=(), method: str = "GET") -> Response:
        return self.proxy.request(method, path, headers=list(headers))

    def content(self, url: str) -> bytes:
        return self.tree.files[url]


@pytest.fixture(scope="module")
def site(synapserve_cmd, tmp_path_factory):
    """One worker (a FIFO that blocked it would stall everything after), four static routes
    ("/" compressing, "/assets/" with its own root, "/plain/" not compressing, "/custom/" with
    index home.txt) and an upstream route "/api/", all on the default site "main"."""
    base = tmp_path_factory.mktemp("static")
    tree = build_tree(base)
    backend = Backend("app")
    cache_dir = str(base / "cache")
    spec = ProxySpec(
        {"app": [backend]},
        None,
        {"main": {"hosts": ["*"], "routes": {**tree.routes(), "/api/": "app"}}},
        ("http",),
        {"server": {"workers": 1, "cache_dir": cache_dir}},
    )
    proxy = Proxy(synapserve_cmd, str(base / "proxy"), spec)
    try:
        proxy.start()
        yield Site(proxy, tree, backend, cache_dir)
        proxy.stop()
    finally:
        if proxy.running:
            proxy.proc.kill()
        backend.close()


def serve(synapserve, tmp_path, root, workers: int = 1, compress: bool = True) -> Proxy:
    """A proxy of its own with one static route "/" over root."""
    route = {"root": str(root), "compress": compress}
    return synapserve(
        upstreams={},
        sites={"main": {"hosts": ["*"], "routes": {"/": route}}},
        server={"workers": workers, "cache_dir": str(tmp_path / "cache")},
    )


def raw_get(proxy: Proxy, path: str):
    """A GET of path exactly as written, on a connection of its own; all bytes that came back."""
    req = f"GET {path} HTTP/1.1\r\nHost: {DEFAULT_HOST}\r\nConnection: close\r\n\r\n"
    return proxy.raw(req.encode("latin-1"))


def without_date(r: Response) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in r.headers if k.lower() != "date")


# ---- the answer ---------------------------------------------------------------------------------

FILES = [
    "/hello.txt",
    "/app.js",
    "/style.css",
    "/data.json",
    "/logo.svg",
    "/feed.xml",
    "/module.wasm",
    "/notes.md",
    "/site.webmanifest",
    "/feed.atom",
    "/edge255.css",
    "/edge256.css",
    "/image.png",
    "/blob.zzq",
    "/noise.txt",
    "/small.bin",
    "/big.bin",
    "/medium.txt",
]


@pytest.mark.parametrize("path", FILES)
def test_get_answers_the_file_with_its_fields(site, path):
    f = site.tree.path(path)
    r = site.get(path)
    assert r.status == 200
    assert r.body == site.content(path)
    assert r.header("Content-Length") == str(len(r.body))
    assert media_type(r) == mime_type(path)
    assert r.header("ETag") == etag(f)
    assert r.header("Last-Modified") == last_modified(f) == http_date(LM_SECONDS)
    assert r.header("Accept-Ranges") == "bytes"
    date = r.header("Date")
    assert date is not None and date.endswith(" GMT")
    assert email.utils.parsedate_to_datetime(date).tzinfo is not None
    assert r.header("Content-Encoding") is None  # the client did not ask for br


def test_unknown_extension_is_octet_stream_and_known_ones_come_from_mime_types(site):
    assert media_type(site.get("/blob.zzq")) == "application/octet-stream"
    if os.path.exists("/etc/mime.types"):
        # this machine's /etc/mime.types, not a table of the proxy's own
        assert media_type(site.get("/notes.md")) == mime_type("x.md") != "application/octet-stream"


@pytest.mark.parametrize(
    "path,ae",
    [("/hello.txt", None), ("/small.bin", None), ("/big.bin", None), ("/app.js", None)]
    + [("/app.js", "br")],
    ids=["tiny", "pread", "splice", "compressible-identity", "compressible-br"],
)
def test_head_has_the_fields_of_get_and_no_body(site, path, ae):
    headers = [("Accept-Encoding", ae)] if ae else []
    if ae:
        wait_br(site.proxy, path)
    with site.proxy.connect() as c:
        h = c.request("HEAD", path, headers=headers)
        g = c.request("GET", path, headers=headers)  # a HEAD that sent a body breaks this one
        again = c.request("HEAD", path, headers=headers)
    assert h.status == g.status == again.status == 200
    assert h.body == b""
    assert without_date(h) == without_date(g) == without_date(again)
    assert int(h.header("Content-Length")) == len(g.body)
    if ae:
        assert h.header("Content-Encoding") == "br"


@pytest.mark.parametrize(
    "path,url",
    [
        ("/hello.txt?x=../../secret.txt", "/hello.txt"),  # the query takes no part
        ("/hello.txt?", "/hello.txt"),
        ("/%68ello.txt", "/hello.txt"),
        ("/%2e/hello.txt", "/hello.txt"),
        ("/with%20space.txt", "/with space.txt"),
        ("/pct%2541.txt", "/pct%41.txt"),  # decoded once: %25 is "%", not the start of %41
        ("/pct%41.txt", "/pctA.txt"),
        ("/docs/./index.html", "/docs/index.html"),
        ("//docs//index.html", "/docs/index.html"),
        ("/docs/guide/../index.html", "/docs/index.html"),
        ("/docs/guide/%2e%2e/index.html", "/docs/index.html"),
        ("/nope/../hello.txt", "/hello.txt"),  # `..` removes the segment before it
        ("/assets/../assets/app.css", "/assets/app.css"),  # back inside the route's prefix
        ("/assets/./app.css", "/assets/app.css"),
    ],
)
def test_the_path_is_decoded_once_and_normalized(site, path, url):
    r = site.get(path)
    assert r.status == 200, (path, r.status, r.body[:200])
    assert r.body == site.content(url)
    assert r.header("ETag") == etag(site.tree.path(url))


@pytest.mark.parametrize(
    "path,url",
    [
        ("/link-inside", "/hello.txt"),
        ("/sub/link-up", "/hello.txt"),  # a relative symlink with `..` that stays inside
        ("/link-dir-inside/index.html", "/docs/index.html"),
    ],
)
def test_symlinks_that_stay_inside_root_are_followed(any_site, path, url):
    site = any_site
    r = site.get(path)
    assert r.status == 200
    assert r.body == site.content(url)
    assert r.header("ETag") == etag(site.tree.path(url))  # the file's, not the link's


@pytest.mark.parametrize(
    "path,location",
    [
        ("/docs", "/docs/"),
        ("/docs?x=1&y=2", "/docs/?x=1&y=2"),
        ("/docs/guide", "/docs/guide/"),
        ("/noindex", "/noindex/"),
        ("/custom/sub", "/custom/sub/"),
    ],
)
def test_a_directory_without_a_trailing_slash_redirects(site, path, location):
    r = site.get(path)
    assert r.status == 301
    loc = r.header("Location")
    assert loc is not None
    # relative or absolute: the same path with a slash, query kept
    assert urlsplit(loc)._replace(scheme="", netloc="").geturl() == location


@pytest.mark.parametrize(
    "path,url",
    [
        ("/", "/index.html"),
        ("/?x=1", "/index.html"),
        ("/docs/", "/docs/index.html"),
        ("/link-dir-inside/", "/docs/index.html"),
        ("/custom/", "/custom/home.txt"),  # index = "home.txt"
        ("/custom/sub/", "/custom/sub/home.txt"),
    ],
)
def test_a_directory_with_a_trailing_slash_serves_its_index(site, path, url):
    r = site.get(path)
    assert r.status == 200
    assert r.body == site.content(url)
    assert media_type(r) == mime_type(url)
    assert r.header("ETag") == etag(site.tree.path(url))


@pytest.mark.parametrize("path", ["/noindex/", "/docs/guide/", "/sub/"])
def test_a_directory_without_an_index_is_403_and_never_listed(site, path):
    r = site.get(path)
    assert r.status == 403
    assert b"file.txt" not in r.body and b"page.html" not in r.body and b"link-up" not in r.body


@pytest.mark.parametrize(
    "path", ["/nope.txt", "/docs/nope.html", "/nope/", "/fifo", "/sock", "/null-device"]
)
def test_missing_files_and_files_that_are_not_regular_are_404(site, path):
    if path == "/null-device" and not site.tree.device:
        pytest.skip("no device node could be made in the tree (mknod refused)")
    r = site.get(path)
    assert r.status == 404
    # the one worker was not held up (opening a FIFO for reading blocks)
    assert site.get("/hello.txt").body == site.content("/hello.txt")


def test_an_empty_file(site):
    f = site.tree.path("/empty.txt")
    with site.proxy.connect() as c:
        r = c.get("/empty.txt")
        assert (r.status, r.body, r.header("Content-Length")) == (200, b"", "0")
        assert r.header("ETag") == etag(f)
        r = c.get("/empty.txt", headers=[("Range", "bytes=0-")])
        assert r.status == 416  # no byte to start from
        assert r.header("Content-Range") == "bytes */0"
        assert c.get("/hello.txt").body == site.content("/hello.txt")


def test_connection_close_and_http_1_0_close_after_the_file(site):
    hello = site.content("/hello.txt")
    with site.proxy.connect() as c:
        r = c.get("/big.bin", headers=[("Connection", "close")])
        assert r.body == site.content("/big.bin")
        assert c.at_eof()
    with site.proxy.connect() as c:
        r = c.get("/hello.txt", version="HTTP/1.0")
        assert (r.status, r.body) == (200, hello)
        assert c.at_eof()


def test_a_file_the_service_user_cannot_read_is_403(site):
    if os.geteuid() == 0:
        pytest.skip("running as root, which reads a mode-000 file: nothing is unreadable to it")
    assert site.get("/unreadable.txt").status == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_get_405_with_allow(site, method):
    r = site.get("/hello.txt", method=method)
    assert r.status == 405
    allow = {t.strip().upper() for t in (r.header("Allow") or "").split(",")}
    assert allow == {"GET", "HEAD"}
    assert site.content("/hello.txt") not in r.body


@pytest.mark.parametrize("method,status", [("POST", 405), ("GET", 200)])
def test_a_request_with_a_body_is_answered_and_the_connection_closed(site, method, status):
    with site.proxy.connect() as c:
        r = c.request(method, "/hello.txt", body=b"0123456789")
        assert r.status == status
        if status == 200:
            assert r.body == site.content("/hello.txt")
        assert c.at_eof(), "the connection stayed open after a request with a body"
    assert site.get("/hello.txt").status == 200


# ---- conditionals -------------------------------------------------------------------------------

INM = {
    "same": (lambda f: etag(f), 304),
    "weak": (lambda f: "W/" + etag(f), 304),  # weak comparison
    "star": (lambda f: "*", 304),
    "in_a_list": (lambda f: f'"nope", {etag(f)}', 304),
    "other": (lambda f: '"nope"', 200),
    "the_br_tag": (lambda f: etag_br(f), 200),  # another representation's tag
}


def assert_304(r: Response, f) -> None:
    assert r.status == 304
    assert r.body == b""
    assert r.header("ETag") == etag(f)
    assert r.header("Last-Modified") == last_modified(f)


@pytest.mark.parametrize("case", INM.keys())
def test_if_none_match(site, case):
    value, status = INM[case]
    f = site.tree.path("/hello.txt")
    with site.proxy.connect() as c:
        r = c.get("/hello.txt", headers=[("If-None-Match", value(f))])
        after = c.get("/hello.txt")  # a 304 carries no body: the next answer parses
    if status == 304:
        assert_304(r, f)
    else:
        assert (r.status, r.body) == (200, site.content("/hello.txt"))
    assert (after.status, after.body) == (200, site.content("/hello.txt"))


def test_a_matching_if_none_match_wins_over_range(site):
    f = site.tree.path("/small.bin")
    r = site.get("/small.bin", [("If-None-Match", etag(f)), ("Range", "bytes=0-9")])
    assert_304(r, f)


def test_head_with_a_matching_if_none_match_is_304(site):
    f = site.tree.path("/hello.txt")
    with site.proxy.connect() as c:
        r = c.request("HEAD", "/hello.txt", headers=[("If-None-Match", etag(f))])
        assert_304(r, f)
        assert c.get("/hello.txt").body == site.content("/hello.txt")


IMS = {
    "equal": (http_date(LM_SECONDS), 304),  # the mtime's nanoseconds do not make it newer
    "later": (http_date(LM_SECONDS + 86400), 304),
    "a_second_earlier": (http_date(LM_SECONDS - 1), 200),
    "a_year_earlier": (http_date(LM_SECONDS - 365 * 86400), 200),
    "not_a_date": ("yesterday", 200),
}


@pytest.mark.parametrize("case", IMS.keys())
def test_if_modified_since(site, case):
    value, status = IMS[case]
    f = site.tree.path("/hello.txt")
    r = site.get("/hello.txt", [("If-Modified-Since", value)])
    if status == 304:
        assert_304(r, f)
    else:
        assert (r.status, r.body) == (200, site.content("/hello.txt"))


def test_if_modified_since_is_ignored_when_there_is_if_none_match(site):
    f = site.tree.path("/hello.txt")
    r = site.get(
        "/hello.txt", [("If-None-Match", '"nope"'), ("If-Modified-Since", IMS["equal"][0])]
    )
    assert (r.status, r.body) == (200, site.content("/hello.txt"))
    early = http_date(LM_SECONDS - 86400)
    r = site.get("/hello.txt", [("If-None-Match", etag(f)), ("If-Modified-Since", early)])
    assert_304(r, f)


IF_MATCH = {
    "same": (lambda f: etag(f), 200),
    "star": (lambda f: "*", 200),
    "in_a_list": (lambda f: f'"nope", {etag(f)}', 200),
    "other": (lambda f: '"nope"', 412),
    "weak": (lambda f: "W/" + etag(f), 412),  # strong comparison: a weak tag never matches
}


@pytest.mark.parametrize("case", IF_MATCH.keys())
def test_if_match(site, case):
    value, status = IF_MATCH[case]
    r = site.get("/hello.txt", [("If-Match", value(site.tree.path("/hello.txt")))])
    assert r.status == status
    if status == 200:
        assert r.body == site.content("/hello.txt")
    else:
        assert site.content("/hello.txt") not in r.body


@pytest.mark.parametrize(
    "value,status",
    [
        (http_date(LM_SECONDS), 200),
        (http_date(LM_SECONDS + 86400), 200),
        (http_date(LM_SECONDS - 1), 412),
    ],
    ids=["equal", "later", "a_second_earlier"],
)
def test_if_unmodified_since(site, value, status):
    r = site.get("/hello.txt", [("If-Unmodified-Since", value)])
    assert r.status == status
    if status == 200:
        assert r.body == site.content("/hello.txt")


def test_a_failed_if_match_wins_over_a_matching_if_none_match(site):
    """RFC 9110 section 13.2.2: If-Match is evaluated first."""
    f = site.tree.path("/hello.txt")
    r = site.get("/hello.txt", [("If-Match", '"nope"'), ("If-None-Match", etag(f))])
    assert r.status == 412


def test_a_304_of_a_compressible_file_carries_vary(site):
    f = site.tree.path("/app.js")
    r = site.get("/app.js", [("If-None-Match", etag(f))])
    assert_304(r, f)
    assert "accept-encoding" in vary_tokens(r)


def test_conditionals_on_the_brotli_body_use_its_own_etag(site):
    f = site.tree.path("/app.js")
    wait_br(site.proxy, "/app.js")
    r = site.get("/app.js", [("If-None-Match", etag_br(f))] + AE_BR)
    assert r.status == 304
    assert r.header("ETag") == etag_br(f)
    assert "accept-encoding" in vary_tokens(r)
    # the identity tag does not name the Brotli body: it is sent
    r = site.get("/app.js", [("If-None-Match", etag(f))] + AE_BR)
    assert r.status == 200
    assert r.header("Content-Encoding") == "br"
    assert brotli.decompress(r.body) == site.content("/app.js")
    # nor the Brotli tag the identity body
    r = site.get("/app.js", [("If-None-Match", etag_br(f))])
    assert (r.status, r.body) == (200, site.content("/app.js"))


# ---- ranges -------------------------------------------------------------------------------------


def _ranges(size: int) -> dict[str, tuple[str, int, int]]:
    return {
        "first_byte": ("bytes=0-0", 0, 0),
        "first_100": ("bytes=0-99", 0, 99),
        "from_100": ("bytes=100-", 100, size - 1),
        "last_100": ("bytes=-100", size - 100, size - 1),
        "last_byte": (f"bytes={size - 1}-", size - 1, size - 1),
        "middle": ("bytes=1234-3456", 1234, 3456),
        "whole": (f"bytes=0-{size - 1}", 0, size - 1),
        "end_past_the_end": (f"bytes=5-{size + 1000}", 5, size - 1),
        "suffix_longer_than_the_file": (f"bytes=-{size + 10}", 0, size - 1),
    }


RANGE_CASES = [("/small.bin", SMALL_SIZE, k) for k in _ranges(SMALL_SIZE)]
RANGE_CASES += [("/big.bin", BIG_SIZE, k) for k in _ranges(BIG_SIZE)]
RANGE_CASES += [("/big.bin", BIG_SIZE, "big_middle")]


@pytest.mark.parametrize("path,size,case", RANGE_CASES)
def test_one_range_gives_206(site, path, size, case):
    spec, first, last = (
        ("bytes=300001-700002", 300001, 700002) if case == "big_middle" else _ranges(size)[case]
    )
    f = site.tree.path(path)
    with site.proxy.connect() as c:
        r = c.get(path, headers=[("Range", spec)])
        after = c.get("/hello.txt")  # the 206 was framed by its Content-Length
    assert r.status == 206
    assert r.header("Content-Range") == f"bytes {first}-{last}/{size}"
    assert r.header("Content-Length") == str(last - first + 1)
    assert r.body == site.content(path)[first : last + 1]
    assert r.header("ETag") == etag(f)
    assert r.header("Last-Modified") == last_modified(f)
    assert after.body == site.content("/hello.txt")


@pytest.mark.parametrize(
    "spec",
    [f"bytes={SMALL_SIZE}-", f"bytes={SMALL_SIZE + 5}-{SMALL_SIZE + 10}", "bytes=-0"],
    ids=["at_the_end", "past_the_end", "empty_suffix"],
)
def test_an_unsatisfiable_range_gives_416(site, spec):
    r = site.get("/small.bin", [("Range", spec)])
    assert r.status == 416
    assert r.header("Content-Range") == f"bytes */{SMALL_SIZE}"
    assert site.content("/small.bin") not in r.body


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=0-0,5-9",  # several ranges
        "bytes=0-1,-1",
        "bytes=abc",
        "bytes=9-5",  # last before first
        "items=0-5",  # another unit
        "bytes=",
        "bytes=-",
        "0-5",
        "bytes=--5",
        "bytes=1-2-3",
    ],
)
def test_several_ranges_or_a_malformed_range_give_the_whole_file(site, spec):
    r = site.get("/small.bin", [("Range", spec)])
    assert r.status == 200
    assert r.body == site.content("/small.bin")
    assert r.header("Content-Range") is None


@pytest.mark.parametrize(
    "value,status",
    [
        (lambda f: etag(f), 206),
        (lambda f: '"nope"', 200),
        (lambda f: "W/" + etag(f), 200),  # compared strongly
        (lambda f: last_modified(f), 206),  # a date equal to Last-Modified
        (lambda f: http_date(LM_SECONDS + 1), 200),
        (lambda f: http_date(LM_SECONDS - 1), 200),
    ],
    ids=["etag", "other_etag", "weak_etag", "date_equal", "date_later", "date_earlier"],
)
def test_if_range(site, value, status):
    f = site.tree.path("/small.bin")
    r = site.get("/small.bin", [("Range", "bytes=10-19"), ("If-Range", value(f))])
    assert r.status == status
    if status == 206:
        assert r.body == site.content("/small.bin")[10:20]
        assert r.header("Content-Range") == f"bytes 10-19/{SMALL_SIZE}"
    else:
        assert r.body == site.content("/small.bin")
        assert r.header("Content-Range") is None


def test_head_ignores_range(site):
    with site.proxy.connect() as c:
        r = c.request("HEAD", "/small.bin", headers=[("Range", "bytes=10-19")])
        assert c.get("/hello.txt").body == site.content("/hello.txt")
    assert r.status == 200
    assert r.header("Content-Length") == str(SMALL_SIZE)
    assert r.header("Content-Range") is None


def test_a_range_of_a_compressible_file_is_served_from_the_identity_body(site):
    wait_br(site.proxy, "/app.js")
    r = site.get("/app.js", [("Range", "bytes=100-199")] + AE_BR)
    assert r.status == 206
    assert r.header("Content-Encoding") is None
    assert r.body == site.content("/app.js")[100:200]
    assert r.header("Content-Range") == f"bytes 100-199/{len(site.content('/app.js'))}"
    assert r.header("ETag") == etag(site.tree.path("/app.js"))
    assert "accept-encoding" in vary_tokens(r)


# ---- compression --------------------------------------------------------------------------------

COMPRESSIBLE = [
    "/app.js",
    "/style.css",
    "/data.json",
    "/logo.svg",
    "/feed.xml",
    "/module.wasm",
    "/notes.md",
    "/medium.txt",  # its identity body goes by splice
    "/index.html",
    "/edge256.css",  # 256 bytes: "at least 256"
]
# the +json and +xml types, when this machine's /etc/mime.types names them
COMPRESSIBLE += [
    url for url in ("/site.webmanifest", "/feed.atom") if mime_type(url).endswith(("+json", "+xml"))
]


@pytest.mark.parametrize("url", COMPRESSIBLE)
def test_a_compressible_file_is_sent_brotli_to_clients_that_accept_br(site, url):
    f = site.tree.path(url)
    content = site.content(url)
    r = wait_br(site.proxy, url)
    assert r.header("Content-Encoding") == "br"
    assert "accept-encoding" in vary_tokens(r)
    assert r.header("ETag") == etag_br(f)
    assert r.header("Content-Length") == str(len(r.body))
    assert len(r.body) < len(content)
    assert brotli.decompress(r.body) == content
    assert media_type(r) == mime_type(url)  # the type of the file, not of the encoding
    assert r.header("Last-Modified") == last_modified(f)
    # and identity to a client that does not say br
    r = site.get(url)
    assert (r.status, r.body) == (200, content)
    assert r.header("Content-Encoding") is None
    assert "accept-encoding" in vary_tokens(r)
    assert r.header("ETag") == etag(f)


def test_the_index_of_a_directory_path_is_sent_brotli_too(site):
    wait_br(site.proxy, "/index.html")
    r = wait_br(site.proxy, "/")
    assert brotli.decompress(r.body) == site.content("/index.html")
    assert r.header("ETag") == etag_br(site.tree.path("/index.html"))


@pytest.mark.parametrize(
    "value,br",
    [
        ("br", True),
        ("gzip, deflate, br", True),
        ("br;q=0.5", True),
        ("gzip;q=1.0, br;q=0.1", True),
        ("deflate, br, zstd", True),
        (None, False),
        ("gzip", False),
        ("br;q=0", False),
        ("gzip, br;q=0.0", False),
        ("identity", False),
        ("gzip, brotli", False),  # "brotli" is not "br"
        ("xbr", False),
    ],
)
def test_accept_encoding_decides(site, value, br):
    wait_br(site.proxy, "/app.js")
    content = site.content("/app.js")
    r = site.get("/app.js", [("Accept-Encoding", value)] if value is not None else [])
    assert r.status == 200
    assert "accept-encoding" in vary_tokens(r)
    if br:
        assert r.header("Content-Encoding") == "br"
        assert brotli.decompress(r.body) == content
    else:
        assert r.header("Content-Encoding") is None
        assert r.body == content
        assert r.header("ETag") == etag(site.tree.path("/app.js"))


def test_files_that_are_not_compressed(site):
    """Under 256 bytes, a type that is not compressible (even when its bytes are), a route with
    compress = false, and a body Brotli cannot make smaller: identity, whatever the client
    accepts."""
    for url in COMPRESSIBLE:  # the control plane has been through the root...
        wait_br(site.proxy, url)
    time.sleep(1.0)  # ...and had the second the doc gives it for any file left
    for url in ["/hello.txt", "/edge255.css", "/image.png", "/blob.zzq", "/small.bin", "/big.bin"]:
        r = site.get(url, AE_BR)
        assert (r.status, r.body) == (200, site.content(url)), url
        assert r.header("Content-Encoding") is None, url
        assert r.header("ETag") == etag(site.tree.path(url)), url
    r = site.get("/plain/app.js", AE_BR)
    assert (r.status, r.body) == (200, site.content("/plain/app.js"))
    assert r.header("Content-Encoding") is None
    # a compressible type over 256 bytes: it says Vary, but has no smaller body to send
    r = site.get("/noise.txt", AE_BR)
    assert (r.status, r.body) == (200, site.content("/noise.txt"))
    assert r.header("Content-Encoding") is None
    assert "accept-encoding" in vary_tokens(r)
    assert r.header("ETag") == etag(site.tree.path("/noise.txt"))


def test_the_compressed_body_lives_in_cache_dir_under_the_files_identity(site):
    wait_br(site.proxy, "/style.css")
    name = os.path.join(site.cache_dir, "br", cache_name(site.tree.path("/style.css")))
    assert os.path.isfile(name), sorted(os.listdir(os.path.join(site.cache_dir, "br")))
    with open(name, "rb") as fh:
        assert brotli.decompress(fh.read()) == site.content("/style.css")


def test_compressed_hits_and_misses_are_counted(site):
    p = site.proxy
    wait_br(p, "/style.css")

    def counts() -> tuple[float, float]:
        hit = metric0(p, "synapserve_static_compressed_total", site="main", result="hit")
        miss = metric0(p, "synapserve_static_compressed_total", site="main", result="miss")
        return hit, miss

    hit, miss = counts()
    assert p.get("/style.css", headers=AE_BR).header("Content-Encoding") == "br"  # a hit
    assert p.get("/style.css").status == 200  # no br asked: neither
    assert p.get("/image.png", headers=AE_BR).status == 200  # not compressible: neither
    r = p.get("/noise.txt", headers=AE_BR)  # br accepted, no body there: a miss
    assert r.header("Content-Encoding") is None
    wait_for(lambda: counts() == (hit + 1, miss + 1), 2.0, "hit +1 and miss +1")


def test_no_usable_cache_dir_turns_compression_off_with_a_warning(synapserve, tmp_path):
    root = tmp_path / "www"
    content = text_body("css", 3000)
    write_file(root / "style.css", content)
    write_file(tmp_path / "a-file", b"not a directory\n")
    cache_dir = tmp_path / "a-file" / "cache"  # cannot be created, not even by root
    proxy = synapserve(
        upstreams={},
        sites={"main": {"hosts": ["*"], "routes": {"/": {"root": str(root), "compress": True}}}},
        server={"workers": 1, "cache_dir": str(cache_dir)},
    )
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        r = proxy.get("/style.css", headers=AE_BR)
        assert (r.status, r.body) == (200, content)
        assert r.header("Content-Encoding") is None
        time.sleep(0.1)
    warnings = [line for line in proxy.stderr().splitlines() if "WARNING" in line]
    assert any("cache" in line for line in warnings), proxy.stderr()


def test_a_fifo_in_a_compressed_root_stalls_nothing(synapserve, tmp_path):
    """The control plane walks the root to compress it: a FIFO with a compressible name must
    not hang it (opening one for reading blocks until a writer comes)."""
    root = tmp_path / "www"
    content = text_body("css", 3000)
    root.mkdir()
    os.mkfifo(root / "a-pipe.css")
    write_file(root / "z-real.css", content)
    proxy = serve(synapserve, tmp_path, root)
    assert proxy.get("/a-pipe.css", headers=AE_BR).status == 404
    r = wait_br(proxy, "/z-real.css")
    assert brotli.decompress(r.body) == content
    # a FIFO made while it runs too
    os.mkfifo(root / "b-pipe.js")
    write_file(root / "c-new.js", content, mtime_ns=None)
    r = wait_br(proxy, "/c-new.js")
    assert brotli.decompress(r.body) == content
    assert proxy.get("/b-pipe.js").status == 404


# ---- the traversal corpus -----------------------------------------------------------------------

E403 = (403,)
E404 = (404,)
EITHER = (403, 404)  # two rules of the doc's table apply at once

TRAVERSAL = [
    # `..` climbing above "/": 403
    ("/../secret.txt", E403),
    ("/../../secret.txt", E403),
    ("/../../../../../../../../etc/passwd", E403),
    ("/%2e%2e/secret.txt", E403),
    ("/%2E%2E/secret.txt", E403),
    ("/.%2e/secret.txt", E403),
    ("/%2e./secret.txt", E403),
    ("/docs/../../secret.txt", E403),
    ("/docs/%2e%2e/%2e%2e/secret.txt", E403),
    ("/./../secret.txt", E403),
    ("//../secret.txt", E403),
    ("/.//..//secret.txt", E403),
    ("/..", E403),
    ("/%2e%2e", E403),
    ("/../www-private/secret.txt", E403),
    ("/../www/hello.txt", E403),  # climbs out, even if it would come back in
    ("/docs/./../../outside/secret.txt", E403),
    ("/sub/../../secret.txt", E403),
    ("/../secret.txt?x=1", E403),
    # normalized out of the route's prefix: 403 (www-assets/hello.txt exists)
    ("/assets/../hello.txt", E403),
    ("/assets/%2e%2e/hello.txt", E403),
    ("/assets/./../hello.txt", E403),
    ("/assets/x/../../hello.txt", E403),
    ("/assets/%2e%2e/%2e%2e/secret.txt", E403),
    ("/assets/..", E403),
    ("/plain/%2e%2e/hello.txt", E403),
    # symlinks that lead outside root, relative and absolute: 403
    ("/escape-rel", E403),
    ("/escape-abs", E403),
    ("/escape-dir/secret.txt", E403),
    ("/escape-dir/", E403),
    ("/passwd-link", E403),
    ("/escape-chain", E403),
    ("/escape-sibling", E403),
    ("/sub/escape-up", E403),
    ("/escape-dangling", EITHER),  # leads outside, to nothing
    ("/evil/", E403),  # a directory whose index leads outside
    ("/evil/index.html", E403),
    # an encoded slash: 404
    ("/docs%2findex.html", E404),
    ("/%2fetc/passwd", E404),
    ("/docs%2Findex.html", E404),
    ("/%2F..%2F..%2Fsecret.txt", EITHER),
    ("/..%2fsecret.txt", EITHER),
    ("/%2e%2e%2fsecret.txt", EITHER),
    ("/docs%2f..%2f..%2fsecret.txt", EITHER),
    ("/hello.txt/..%2f..%2fsecret.txt", EITHER),
    # an encoded NUL: 404
    ("/hello.txt%00", E404),
    ("/hello.txt%00.png", E404),
    ("/%00/../secret.txt", E404),
    ("/..%00/secret.txt", E404),
    ("/.%00./secret.txt", E404),
    # a backslash, raw or encoded: 404 (back\slash.txt exists in root)
    ("/..\\secret.txt", E404),
    ("/..\\..\\secret.txt", E404),
    ("/%5c..%5csecret.txt", E404),
    ("/..%5csecret.txt", E404),
    ("/%2e%2e%5csecret.txt", E404),
    ("/back%5cslash.txt", E404),
    ("/back%5Cslash.txt", E404),
    ("/back\\slash.txt", E404),
    ("/docs\\index.html", E404),
    # a control character: 404
    ("/hello.txt%0a", E404),
    ("/hello%0d%0a.txt", E404),
    ("/%09hello.txt", E404),
    ("/hello.txt%1b", E404),
    ("/hello.txt%7f", E404),
    # look-alikes that decode (once) to names that are not there: 404
    ("/%252e%252e/secret.txt", E404),
    ("/%252e%252e%252fsecret.txt", E404),
    ("/..;/secret.txt", E404),
    ("/%c0%ae%c0%ae/secret.txt", E404),
    ("/%ef%bc%8e%ef%bc%8e/secret.txt", E404),
    ("/.../secret.txt", E404),
    ("//etc/passwd", E404),
    ("/etc/passwd", E404),
]


def test_the_traversal_corpus_is_big_enough():
    assert len(TRAVERSAL) >= 40
    assert len({p for p, _ in TRAVERSAL}) == len(TRAVERSAL)


@pytest.fixture(scope="module")
def fallback_site(synapserve_cmd, tmp_path_factory):
    """The same tree and routes, served by an engine told that openat2 is missing (as on a
    kernel before 5.6, or under a seccomp filter that does not know it): files are opened
    through symlinks, then checked to lie beneath the root through /proc/self/fd."""
    base = tmp_path_factory.mktemp("static-fallback")
    tree = build_tree(base)
    backend = Backend("app")
    spec = ProxySpec(
        {"app": [backend]},
        None,
        {"main": {"hosts": ["*"], "routes": {**tree.routes(), "/api/": "app"}}},
        ("http",),
        {"server": {"workers": 1, "cache_dir": str(base / "cache")}},
    )
    proxy = Proxy(synapserve_cmd, str(base / "proxy"), spec)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SYN_STATIC_OPENAT2", "off")
            proxy.start()
        yield Site(proxy, tree, backend, str(base / "cache"))
        proxy.stop()
    finally:
        if proxy.running:
            proxy.proc.kill()
        backend.close()


@pytest.fixture(params=["openat2", "fallback"])
def any_site(request):
    return request.getfixturevalue("site" if request.param == "openat2" else "fallback_site")


@pytest.mark.parametrize("path,statuses", TRAVERSAL, ids=[p for p, _ in TRAVERSAL])
def test_traversal_is_refused(any_site, path, statuses):
    site = any_site
    r = raw_get(site.proxy, path)
    assert r, "no answer"
    assert r.status in statuses, (path, r.status, bytes(r)[:300])
    assert SECRET not in r
    assert PASSWD_MARK not in r
    assert ASSETS_ROOT_MARKER not in r


@pytest.mark.parametrize(
    "path", ["/%zz", "/%4", "/hello.txt%", "/%g0.txt", "/%%2e%2e/secret.txt", "/%u002e%u002e/x"]
)
def test_a_bad_escape_is_400(site, path):
    r = raw_get(site.proxy, path)
    assert r.status == 400
    assert SECRET not in r


def test_the_corpus_leaves_the_proxy_serving(site):
    for path, _ in TRAVERSAL:
        raw_get(site.proxy, path)
    assert site.get("/hello.txt").body == site.content("/hello.txt")
    assert site.proxy.running


# ---- files that change on disk ------------------------------------------------------------------


def expect_fresh(
    proxy: Proxy, url: str, f, new: bytes, changed_at: float, compressed: bool = True
) -> None:
    """After f was changed to new at changed_at: identity fresh within a second (polled), on every
    worker once that second is over; then the Brotli body of new within BR_WITHIN, and from
    then on nothing else."""
    tag, tag_br = etag(f), etag_br(f)

    def fresh():
        try:
            r = proxy.get(url)
        except ConnectionError:
            return None  # a stale length may end an answer early: the doc allows it that second
        return r.status == 200 and r.body == new and r.header("ETag") == tag

    wait_for(fresh, FRESH_WITHIN, f"{url} to be served fresh")
    time.sleep(max(0.0, changed_at + FRESH_WITHIN - time.monotonic()))
    for _ in range(10):  # new connections, so each worker answers some
        r = proxy.get(url)
        assert (r.status, r.body, r.header("ETag")) == (200, new, tag)
    if not compressed:
        return

    def br_fresh():
        r = proxy.get(url, headers=AE_BR)
        assert r.status == 200
        if r.header("Content-Encoding") != "br":
            assert (r.body, r.header("ETag")) == (new, tag)
            return None
        # a stale body can never be served: the name of a body is the file's identity
        assert brotli.decompress(r.body) == new, "a stale Brotli body"
        assert r.header("ETag") == tag_br
        return r

    wait_for(br_fresh, BR_WITHIN, f"the Brotli body of the new {url}")
    for _ in range(10):
        r = proxy.get(url, headers=AE_BR)
        assert r.header("Content-Encoding") == "br"
        assert (brotli.decompress(r.body), r.header("ETag")) == (new, tag_br)


def test_a_file_changed_in_place_is_served_fresh_within_a_second(synapserve, tmp_path):
    root = tmp_path / "www"
    f = write_file(root / "page.css", text_body("v1", 3000))
    proxy = serve(synapserve, tmp_path, root, workers=2)
    old = f.read_bytes()
    assert brotli.decompress(wait_br(proxy, "/page.css").body) == old
    for new in (text_body("version two, longer", 9000), text_body("v3", 1000)):
        changed_at = time.monotonic()
        rewrite_in_place(f, new)
        expect_fresh(proxy, "/page.css", f, new, changed_at)


def test_a_file_renamed_over_is_served_fresh_within_a_second(synapserve, tmp_path):
    root = tmp_path / "www"
    f = write_file(root / "app.js", text_body("v1", 4000))
    proxy = serve(synapserve, tmp_path, root, workers=2)
    old = f.read_bytes()
    assert brotli.decompress(wait_br(proxy, "/app.js").body) == old
    for new in (text_body("v2", 4000), text_body("v3, another size", 6000)):
        changed_at = time.monotonic()
        replace_file(f, new)
        expect_fresh(proxy, "/app.js", f, new, changed_at)


def test_a_deleted_file_goes_away_with_its_body_and_a_new_file_appears(synapserve, tmp_path):
    root = tmp_path / "www"
    content = text_body("gone", 3000)
    f = write_file(root / "gone.js", content)
    proxy = serve(synapserve, tmp_path, root, workers=2)
    assert brotli.decompress(wait_br(proxy, "/gone.js").body) == content
    br_dir = tmp_path / "cache" / "br"

    def bodies_of(data: bytes) -> list:
        out = []
        for p in br_dir.iterdir() if br_dir.is_dir() else []:
            try:
                if brotli.decompress(p.read_bytes()) == data:
                    out.append(p)
            except (brotli.error, OSError):
                pass  # a body being written, or removed meanwhile
        return out

    assert bodies_of(content), "no compressed body of the file in cache_dir/br"
    f.unlink()
    wait_for(lambda: proxy.get("/gone.js").status == 404, FRESH_WITHIN, "a 404 for the file")
    assert [proxy.get("/gone.js").status for _ in range(10)] == [404] * 10
    wait_for(lambda: not bodies_of(content), BR_WITHIN, "the body of the deleted file to go")

    new = text_body("new", 3500)
    write_file(root / "new.js", new, mtime_ns=None)
    wait_for(lambda: proxy.get("/new.js").body == new, FRESH_WITHIN, "the new file")
    assert brotli.decompress(wait_br(proxy, "/new.js").body) == new


def test_a_file_renamed_over_while_being_sent_completes_with_the_old_content(synapserve, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "movie.bin"
    old_sha = write_pattern_file(f, 64)
    proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
    port = proxy.ports["http"]
    try:
        with Download(port, "/movie.bin", rcvbuf=64 * 1024) as slow:
            assert slow.response.status == 200
            assert slow.length == 64 * MiB
            slow.read(2 * MiB)  # most of the file is still to be read from disk
            tmp = root / ".movie.bin.new"
            new_sha = write_pattern_file(tmp, 48, seed=b"the new movie")
            os.replace(tmp, f)
            # meanwhile the one worker answers others, with the new version
            wait_for(
                lambda: proxy.request("HEAD", "/movie.bin").header("ETag") == etag(f),
                FRESH_WITHIN,
                "the new version's ETag",
            )
            with Download(port, "/movie.bin") as d:
                assert d.length == 48 * MiB
                d.read()
                assert d.hexdigest() == new_sha
            slow.read()
            assert slow.got == 64 * MiB
            assert slow.hexdigest() == old_sha, "the download in flight changed content"
    finally:
        f.unlink(missing_ok=True)


def test_downloads_abandoned_midway_leave_no_descriptor_behind(synapserve, tmp_path):
    """The worker holds a descriptor of the file (and a pipe) during a splice: a client that
    leaves, with FIN or with RST, must cost it none of them for good."""
    root = tmp_path / "www"
    root.mkdir()
    sha = write_pattern_file(root / "movie.bin", 16)
    proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
    fd_dir = f"/proc/{proxy.proc.pid}/fd"
    with Download(proxy.ports["http"], "/movie.bin") as d:  # the file is in the table now
        d.read()
        assert d.hexdigest() == sha
    time.sleep(0.2)  # the finished connection is closed on the proxy's side too
    baseline = len(os.listdir(fd_dir))
    for i in range(30):
        d = Download(proxy.ports["http"], "/movie.bin", rcvbuf=64 * 1024)
        d.read(MiB)
        if i % 2:
            d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        d.close()
    try:
        wait_for(lambda: len(os.listdir(fd_dir)) <= baseline, 3.0, "descriptors back to baseline")
    except AssertionError:
        assert len(os.listdir(fd_dir)) <= baseline, "descriptors left behind"
    with Download(proxy.ports["http"], "/movie.bin") as d:
        d.read()
        assert d.hexdigest() == sha


def test_a_deleted_file_is_let_go_by_the_worker(synapserve, tmp_path):
    """The worker keeps files it served open; once one is deleted, the watcher's report makes
    it let go at its next request, so the file's disk space comes back."""
    root = tmp_path / "www"
    root.mkdir()
    write_pattern_file(root / "old.bin", 4)
    write_file(root / "hello.txt", b"still here\n")
    proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
    fd_dir = f"/proc/{proxy.proc.pid}/fd"

    def holds_deleted() -> bool:
        links = []
        for fd in os.listdir(fd_dir):
            try:
                links.append(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                pass
        return any(link.endswith("old.bin (deleted)") for link in links)

    assert proxy.request("GET", "/old.bin").status == 200
    (root / "old.bin").unlink()
    wait_for(
        lambda: proxy.request("GET", "/hello.txt").status == 200 and not holds_deleted(),
        FRESH_WITHIN,
        "the deleted file's descriptor closed",
    )
    assert proxy.request("GET", "/old.bin").status == 404


def test_a_file_truncated_while_being_sent_ends_the_connection(synapserve, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "movie.bin"
    write_pattern_file(f, 64)
    write_file(root / "hello.txt", b"still here\n")
    proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
    try:
        with Download(proxy.ports["http"], "/movie.bin", rcvbuf=64 * 1024) as slow:
            assert slow.length == 64 * MiB
            slow.read(2 * MiB)
            os.truncate(f, MiB)
            with pytest.raises(ConnectionError):
                slow.read()  # a hang here is a failure too: the socket times out
            assert slow.eof and slow.got < 64 * MiB
        assert proxy.get("/hello.txt").body == b"still here\n"
    finally:
        f.unlink(missing_ok=True)


def test_a_new_subdirectory_is_watched_too(synapserve, tmp_path):
    root = tmp_path / "www"
    write_file(root / "top.css", text_body("top", 1000))
    proxy = serve(synapserve, tmp_path, root, workers=1)
    wait_br(proxy, "/top.css")
    content = text_body("deep", 2000)
    f = write_file(root / "new" / "deeper" / "deep.css", content, mtime_ns=None)
    assert brotli.decompress(wait_br(proxy, "/new/deeper/deep.css").body) == content
    changed_at = time.monotonic()
    replace_file(f, text_body("deep v2", 2500))
    expect_fresh(proxy, "/new/deeper/deep.css", f, f.read_bytes(), changed_at)


def test_more_files_than_a_worker_keeps_open_and_long_paths(synapserve, tmp_path):
    """A worker keeps a fixed table of open files: files beyond it, and paths too long to be
    kept in it, are served right all the same, and fresh after a change."""
    root = tmp_path / "www"
    n = 1500
    for i in range(n):
        write_file(root / "many" / f"f{i:04}.txt", b"file %d\n" % i * (1 + i % 7))
    long_url = "/" + "/".join(["d" * 60] * 4) + "/long-name-" + "x" * 40 + ".txt"
    long_file = write_file(root / long_url.lstrip("/"), b"at the end of a long path\n")
    proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
    with proxy.connect() as c:
        for order in (range(n), reversed(range(n))):
            for i in order:
                r = c.get(f"/many/f{i:04}.txt")
                assert (r.status, r.body) == (200, b"file %d\n" % i * (1 + i % 7)), i
        r = c.get(long_url)
        assert (r.status, r.body) == (200, b"at the end of a long path\n")
        assert r.header("ETag") == etag(long_file)
    changed_at = time.monotonic()
    rewrite_in_place(long_file, b"the long path, changed\n")
    rewrite_in_place(root / "many" / "f0007.txt", b"seven, changed\n")
    for url, f in ((long_url, long_file), ("/many/f0007.txt", root / "many" / "f0007.txt")):
        expect_fresh(proxy, url, f, f.read_bytes(), changed_at, compressed=False)


# ---- a large file -------------------------------------------------------------------------------


def test_a_1_gib_file_arrives_whole_by_splice(synapserve, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "huge.bin"
    try:
        sha = write_pattern_file(f, 1024)
        proxy = serve(synapserve, tmp_path, root, workers=1, compress=False)
        port = proxy.ports["http"]
        h = proxy.request("HEAD", "/huge.bin")
        assert (h.status, h.header("Content-Length")) == (200, str(GiB))
        splices = metric0(proxy, "synapserve_io_uring_ops_total", op="splice")
        sent = metric0(proxy, "synapserve_static_bytes_sent_total", site="main")
        with Download(port, "/huge.bin") as d:
            assert d.response.status == 200
            assert d.length == GiB
            d.read()
            assert d.got == GiB
            assert d.hexdigest() == sha
        wait_for(
            lambda: metric0(proxy, "synapserve_io_uring_ops_total", op="splice") > splices,
            what="splice ops to have grown",
        )
        wait_for(
            lambda: metric0(proxy, "synapserve_static_bytes_sent_total", site="main") == sent + GiB,
            what="1 GiB more body bytes counted",
        )
        first = GiB - 100_000  # the tail, at an explicit offset near the end
        with Download(port, "/huge.bin", headers=[("Range", f"bytes={first}-")]) as d:
            assert d.response.status == 206
            assert d.response.header("Content-Range") == f"bytes {first}-{GiB - 1}/{GiB}"
            d.read()
            assert d.hexdigest() == file_sha256(f, first)
    finally:
        f.unlink(missing_ok=True)


def test_offsets_beyond_4_gib(synapserve, tmp_path):
    """A sparse 5 GiB file (no disk used for its holes): sizes and offsets past 32 bits in
    Content-Length, Content-Range, the ETag and the splice offsets."""
    root = tmp_path / "www"
    root.mkdir()
    f = root / "sparse.bin"
    size = 5 * GiB + 12345
    marks = {4 * GiB + 7: b"past four GiB" * 1000, size - 5000: b"the very end" * 416 + b"12345678"}
    with open(f, "wb") as fh:
        fh.truncate(size)
        for at, data in marks.items():
            fh.seek(at)
            fh.write(data)
    try:
        proxy = serve(synapserve, tmp_path, root, compress=False)
        h = proxy.request("HEAD", "/sparse.bin")
        assert (h.status, h.header("Content-Length")) == (200, str(size))
        assert h.header("ETag") == etag(f)
        for at, data in marks.items():
            last = at + len(data) - 1
            r = proxy.get("/sparse.bin", headers=[("Range", f"bytes={at}-{last}")])
            assert r.status == 206
            assert r.header("Content-Range") == f"bytes {at}-{last}/{size}"
            assert r.body == data
        r = proxy.get("/sparse.bin", headers=[("Range", "bytes=-5000")])
        assert (r.status, r.body) == (206, marks[size - 5000])
        r = proxy.get("/sparse.bin", headers=[("Range", f"bytes={size}-")])
        assert (r.status, r.header("Content-Range")) == (416, f"bytes */{size}")
    finally:
        f.unlink(missing_ok=True)


# ---- connections ------------------------------------------------------------------------------


def test_many_static_answers_on_one_connection(site):
    hello = site.content("/hello.txt")
    f = site.tree.path("/hello.txt")
    with site.proxy.connect() as c:
        assert c.get("/hello.txt").body == hello
        assert c.request("HEAD", "/app.js").header("Content-Length") == str(
            len(site.content("/app.js"))
        )
        assert c.get("/big.bin").body == site.content("/big.bin")
        assert c.get("/small.bin", headers=[("Range", "bytes=0-9")]).status == 206
        assert c.get("/hello.txt", headers=[("If-None-Match", etag(f))]).status == 304
        assert c.get("/nope.txt").status == 404
        assert c.get("/docs").status == 301
        assert c.get("/noindex/").status == 403
        assert c.get("/small.bin", headers=[("Range", "bytes=-0")]).status == 416
        assert c.get("/api/x").tag == "app"
        assert c.get("/medium.txt").body == site.content("/medium.txt")
        assert c.get("/hello.txt").body == hello
        assert not c.at_eof(0.2)


def test_concurrent_downloads_of_one_file_each_arrive_whole(synapserve, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    sha = write_pattern_file(root / "video.bin", 8)
    write_file(root / "small.txt", b"small and quick\n")
    proxy = serve(synapserve, tmp_path, root, workers=2, compress=False)

    def fetch(i: int) -> tuple[int, str]:
        if i % 4 == 3:
            r = proxy.get("/small.txt")
            return r.status, "small" if r.body == b"small and quick\n" else "wrong"
        with Download(proxy.ports["http"], "/video.bin") as d:
            d.read()
            return d.response.status, d.hexdigest()

    with cf.ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(fetch, range(32)))
    assert got == [(200, "small") if i % 4 == 3 else (200, sha) for i in range(32)]


def test_pipelined_static_requests_are_answered_in_order(site):
    f = site.tree.path("/hello.txt")
    reqs = [
        ("GET", "/hello.txt", [], 200, site.content("/hello.txt")),
        ("HEAD", "/app.js", [], 200, b""),
        ("GET", "/big.bin", [], 200, site.content("/big.bin")),
        ("GET", "/nope.txt", [], 404, None),
        ("GET", "/docs", [], 301, None),
        ("GET", "/small.bin", [("Range", "bytes=10-19")], 206, site.content("/small.bin")[10:20]),
        ("GET", "/api/pipelined", [], 200, b"app"),
        ("GET", "/hello.txt", [("If-None-Match", etag(f))], 304, b""),
        ("GET", "/medium.txt", [], 200, site.content("/medium.txt")),
        ("GET", "/", [], 200, site.content("/index.html")),
    ]
    with site.proxy.connect() as c:
        c.send(b"".join(build_request(m, p, None, h) for m, p, h, _, _ in reqs))
        for method, path, _, status, body in reqs:
            r = c.read_response(head_request=method == "HEAD")
            assert r.status == status, (method, path)
            if body is not None:
                assert r.body == body, (method, path)
        assert c.get("/hello.txt").status == 200


def test_a_static_route_beside_an_upstream_route(site):
    b = site.backend
    before = b.requests
    r = site.get("/api/x?y=1")
    assert (r.status, r.tag, r.body) == (200, "app", b"app")
    assert b.log[-1].target == "/api/x?y=1"
    assert site.get("/hello.txt").body == site.content("/hello.txt")
    assert site.get("/nope.txt").status == 404
    assert site.get("/api/").tag == "app"
    assert b.requests == before + 2  # the static requests never reached it


def test_a_static_route_added_by_reload_serves_and_compresses(synapserve, backends, tmp_path):
    """The control plane reads the new static route, walks its root for compression, and a
    download in flight under the old config completes."""
    (a,) = backends("a")
    root = tmp_path / "www"
    css = text_body("css", 3000)
    write_file(root / "static" / "site.css", css)
    big = root / "static" / "big.bin"
    big_sha = write_pattern_file(big, 16)
    proxy = synapserve(
        upstreams={"app": [a]},
        sites={"main": {"hosts": ["*"], "routes": {"/": "app"}}},
        server={"workers": 1, "cache_dir": str(tmp_path / "cache")},
    )
    assert proxy.get("/static/site.css").tag == "a"
    proxy.write_config(
        sites={
            "main": {
                "hosts": ["*"],
                "routes": {"/": "app", "/static/": {"root": str(root), "compress": True}},
            }
        }
    )
    assert proxy.reload()["http_status"] == 200
    r = proxy.get("/static/site.css")
    assert (r.status, r.body, r.tag) == (200, css, None)
    r = wait_br(proxy, "/static/site.css")
    assert brotli.decompress(r.body) == css
    assert proxy.get("/other").tag == "a"
    # a download started before a reload ends whole after it
    with Download(proxy.ports["http"], "/static/big.bin", rcvbuf=64 * 1024) as d:
        d.read(MiB)
        proxy.write_config(
            sites={
                "main": {
                    "hosts": ["*"],
                    "routes": {"/": "app", "/static/": {"root": str(root), "compress": False}},
                }
            }
        )
        assert proxy.reload()["http_status"] == 200
        d.read()
        assert d.hexdigest() == big_sha


# ---- metrics ----------------------------------------------------------------------------------


def test_static_requests_and_body_bytes_are_counted(synapserve, tmp_path):
    root = tmp_path / "www"
    hello = b"hello\n"
    css = text_body("css", 3000)
    big = os.urandom(MiB)
    write_file(root / "hello.txt", hello)
    write_file(root / "style.css", css)
    write_file(root / "big.bin", big)
    (root / "dir").mkdir()
    proxy = serve(synapserve, tmp_path, root, workers=2)
    wait_br(proxy, "/style.css")

    def m(name: str, **labels) -> float:
        return metric0(proxy, name, site="main", **labels)

    names = ("synapserve_static_requests_total", "synapserve_requests_total")
    before = {(n, c): m(n, code=c) for n in names for c in ("2xx", "3xx", "4xx")}
    # answers without a file body first: what their own bodies count is not pinned down
    tag = etag(root / "hello.txt")
    assert proxy.get("/hello.txt", headers=[("If-None-Match", tag)]).status == 304
    assert proxy.get("/dir").status == 301
    assert proxy.get("/nope").status == 404
    assert proxy.request("DELETE", "/hello.txt").status == 405
    assert proxy.get("/big.bin", headers=[("Range", "bytes=-0")]).status == 416
    wait_for(
        lambda: m(names[0], code="4xx") == before[(names[0], "4xx")] + 3,
        what="the 4xx answers to be counted",
    )
    sent = m("synapserve_static_bytes_sent_total")
    r1 = proxy.get("/hello.txt")
    r2 = proxy.get("/big.bin")
    r3 = proxy.request("HEAD", "/big.bin")
    r4 = proxy.get("/big.bin", headers=[("Range", "bytes=100-199")])
    r5 = proxy.get("/style.css", headers=AE_BR)
    assert [r.status for r in (r1, r2, r3, r4, r5)] == [200, 200, 200, 206, 200]
    assert r5.header("Content-Encoding") == "br"
    body_bytes = len(hello) + MiB + 0 + 100 + len(r5.body)
    wait_for(
        lambda: m("synapserve_static_bytes_sent_total") == sent + body_bytes,
        what=f"{body_bytes} body bytes counted",
    )
    want = {
        (n, c): before[(n, c)] + k for n in names for c, k in (("2xx", 5), ("3xx", 2), ("4xx", 3))
    }

    def now() -> dict:
        return {(n, c): m(n, code=c) for n, c in want}

    # static requests count in both families alike
    try:
        wait_for(lambda: now() == want, 2.0, "the request counters")
    except AssertionError:
        assert now() == want


# ---- found in review ----------------------------------------------------------------------------


def test_a_file_rewritten_in_place_with_its_old_mtime_is_served_fresh(synapserve, tmp_path):
    """cp -p, rsync -t or a reproducible build change a file's content and keep its size and
    mtime: the ctime still tells, for the identity body, the in-memory copy of a small file,
    and the compressed body."""
    root = tmp_path / "www"
    root.mkdir()
    small, big = root / "app.js", root / "big.js"
    write_file(small, b"var a = 1;\n" * 100)
    write_file(big, b"function f() { return 1; }\n" * 1000)
    proxy = serve(synapserve, tmp_path, root)
    br = [("Accept-Encoding", "br")]
    wait_for(lambda: proxy.request("GET", "/big.js", headers=br).header("Content-Encoding"), 3.0)
    assert proxy.request("GET", "/app.js").body == small.read_bytes()
    for f, new in ((small, b"var b = 2;\n" * 100), (big, b"function g() { return 2; }\n" * 1000)):
        st = f.stat()
        with open(f, "r+b") as out:  # same size, in place
            out.write(new)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime back
        assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    wait_for(
        lambda: proxy.request("GET", "/app.js").body == small.read_bytes(),
        FRESH_WITHIN,
        "the small file's new content",
    )

    def fresh_br() -> bool:
        r = proxy.request("GET", "/big.js", headers=br)
        body = brotli.decompress(r.body) if r.header("Content-Encoding") == "br" else r.body
        return body == big.read_bytes()

    assert proxy.request("GET", "/big.js").body == big.read_bytes()
    for _ in range(20):  # identity or a fresh body, never the old one
        assert fresh_br()
        time.sleep(0.05)


def test_last_modified_is_never_later_than_date(synapserve, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "future.txt"
    write_file(f, b"from the future\n")
    later = time.time() + 2 * 86400
    os.utime(f, (later, later))
    proxy = serve(synapserve, tmp_path, root, compress=False)
    r = proxy.request("GET", "/future.txt")
    assert r.status == 200
    lm = email.utils.parsedate_to_datetime(r.header("Last-Modified"))
    date = email.utils.parsedate_to_datetime(r.header("Date"))
    assert lm <= date
    # so a client revalidating with it does not get "not modified" for two days of changes
    # (HTTP dates have whole seconds: a change within the same second cannot tell)
    time.sleep(1.1)
    write_file(f, b"changed today\n")
    os.utime(f, (later, later))
    r2 = proxy.request(
        "GET", "/future.txt", headers=[("If-Modified-Since", r.header("Last-Modified"))]
    )
    assert r2.status == 200 and r2.body == b"changed today\n"


@pytest.mark.parametrize(
    "target,location",
    [
        ("//evil.example/../docs", "/docs/"),
        ("/x/../docs?a=1", "/docs/?a=1"),
        ("/do%63s", "/docs/"),
    ],
)
def test_the_redirect_to_a_directory_is_built_from_the_normalized_path(site, target, location):
    r = raw_get(site.proxy, target)
    assert r.status == 301
    assert r.response().header("Location") == location


def _sf_set(statik: int, rel: str) -> int:
    """The set of the worker's open-file table a path falls in (static.c sf_hash, 256 sets)."""
    h = 2166136261 ^ statik
    for b in rel.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h & 255


def test_two_hot_files_of_one_set_stay_open_together(synapserve, tmp_path):
    """Two files whose paths fall in the same set of the table are both kept open (two
    ways a set): alternating requests do not reopen one another."""
    root = tmp_path / "www"
    root.mkdir()
    seen: dict[int, str] = {}
    for i in range(10_000):
        name = f"f{i}.txt"
        s = _sf_set(0, name)
        if s in seen:
            pair = (seen[s], name)
            break
        seen[s] = name
    for name in pair:
        write_file(root / name, name.encode())
    proxy = serve(synapserve, tmp_path, root, compress=False)
    fd_dir = f"/proc/{proxy.proc.pid}/fd"
    for _ in range(3):
        for name in pair:
            assert proxy.request("GET", "/" + name).body == name.encode()
    links = set()
    for fd in os.listdir(fd_dir):
        try:
            links.add(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:
            pass
    assert {str(root / n) for n in pair} <= links
