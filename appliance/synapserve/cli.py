"""The `synapserve` command line (PRODUCT.md section 4)."""

from __future__ import annotations

import argparse
import json
import sys

from synapserve import __version__

DEFAULT_CONFIG_DIR = "/etc/synapserve"


def cmd_version(args: argparse.Namespace) -> int:
    import platform

    from synapserve import native

    feats = native.probe_features()
    print(f"synapserve {__version__} (native {native.native_version()})")
    print(f"kernel: {platform.release()}")
    engine = "io_uring" if feats["io_uring"] else "unavailable (io_uring could not be set up)"
    print(f"engine: {engine}")
    print(f"parser simd: {native.simd_level()} (cpu supports {native.simd_detected()})")
    print("features:")
    for name, ok in feats.items():
        print(f"  {name:<17} {'yes' if ok else 'no'}")
    suites = native.ktls_suites()
    print(f"kernel tls: {', '.join(suites) if suites else 'no (TLS is encrypted in user space)'}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from synapserve import config

    try:
        cfg = config.load(args.config_dir)
    except config.ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return 1
    print(cfg.summary())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from synapserve import supervisor

    return supervisor.run(args.config_dir)


def _admin_url(args: argparse.Namespace, path: str) -> str:
    return f"http://{args.admin}{path}"


def _open(req, timeout: float):
    """urlopen for the admin endpoint, which is local: never through an
    http_proxy from the environment.  (urllib is imported here, by the two
    commands that use it: with the ssl and email modules it brings it costs
    `check` and `version` 7 MiB of memory.)"""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(req, timeout=timeout)


def _admin_default(config_dir: str) -> str:
    try:
        from synapserve import config

        return str(config.load(config_dir).admin.bind)
    except Exception:
        return "127.0.0.1:9180"


def cmd_reload(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(_admin_url(args, "/reload"), data=b"", method="POST")
    try:
        with _open(req, timeout=70) as r:
            result = json.loads(r.read())
    except urllib.error.HTTPError as e:
        result = json.loads(e.read() or b"{}")
    except OSError as e:
        print(
            f"synapserve reload: cannot reach the admin endpoint at {args.admin}: {e}",
            file=sys.stderr,
        )
        return 1
    if not result.get("ok"):
        for err in result.get("errors", []):
            print(err, file=sys.stderr)
        return 1
    from synapserve.supervisor import summarize

    print(f"reloaded: generation {result['generation']}: {summarize(result['changes'])}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        with _open(_admin_url(args, "/status"), timeout=10) as r:
            doc = json.loads(r.read())
    except OSError as e:
        print(
            f"synapserve status: cannot reach the admin endpoint at {args.admin}: {e}",
            file=sys.stderr,
        )
        return 1
    print(f"generation {doc['generation']}")
    print(
        f"{'UPSTREAM':<16} {'SERVER':<24} {'STATE':<8} {'ACTIVE':>6} {'REQUESTS':>9} "
        f"{'FAILURES':>8}"
    )
    for name, up in doc["upstreams"].items():
        for s in up["servers"]:
            addr = s["address"] + (" (backup)" if s["backup"] else "")
            print(
                f"{name:<16} {addr:<24} {s['state']:<8} {s['active']:>6} "
                f"{s['requests']:>9} {s['failures']:>8}"
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synapserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", help="version, engine and detected features")
    p.set_defaults(func=cmd_version)

    for name, text, func in (
        ("run", "run in the foreground", cmd_run),
        ("check", "validate the configuration", cmd_check),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
        p.set_defaults(func=func)

    for name, text, func in (
        ("reload", "reload the running server", cmd_reload),
        ("status", "show upstreams and their servers", cmd_status),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
        p.add_argument("--admin", help="admin address host:port (default: from the config)")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", "") in ("reload", "status") and not args.admin:
        args.admin = _admin_default(args.config_dir)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
