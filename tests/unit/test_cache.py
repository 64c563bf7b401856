"""synapserve.cache: preparing cache_dir, and the names of compressed bodies."""

from __future__ import annotations

import os

import pytest

from synapserve import cache

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="giving directories away needs root")
def test_prepare_gives_the_service_user_only_what_it_made(tmp_path):
    d = tmp_path / "cache"
    assert cache.prepare(str(d), NOBODY, NOBODY) == str(d)
    assert (d.stat().st_uid, (d / "br").stat().st_uid) == (NOBODY, NOBODY)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving directories away needs root")
def test_prepare_never_gives_away_what_a_symlink_points_at(tmp_path):
    """A service user who owned cache_dir could point br at a directory of root's: the next
    start, as root, must not hand that directory over."""
    victim = tmp_path / "victim"
    victim.mkdir()
    d = tmp_path / "cache"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    os.symlink(victim, d / "br")
    assert cache.prepare(str(d), NOBODY, NOBODY) == ""  # refused, compression off
    assert victim.stat().st_uid == 0


def test_body_name_is_the_identity_of_the_content(tmp_path):
    f = tmp_path / "a.css"
    f.write_bytes(b"x" * 300)
    st = f.stat()
    name = cache.body_name(st)
    assert name == (
        f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"
    )
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # the mtime put back: ctime moved
    assert cache.body_name(f.stat()) != name
