"""The `synapserve` command line (PRODUCT.md section 4)."""

from __future__ import annotations

import argparse
import platform
import sys

from synapserve import __version__

DEFAULT_CONFIG_DIR = "/etc/synapserve"


def cmd_version(args: argparse.Namespace) -> int:
    from synapserve import native

    print(f"synapserve {__version__} (native {native.native_version()})")
    print(f"kernel: {platform.release()}")
    print(f"parser simd: {native.simd_level()} (cpu supports {native.simd_detected()})")
    print("engine: not yet built (io_uring data plane: issue 3)")
    return 0


def cmd_not_yet(args: argparse.Namespace) -> int:
    print(
        f"synapserve {args.command}: not yet: this build has the HTTP/1.1 parser only; "
        "the data plane and control plane land next",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synapserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", help="version, engine and detected features")
    p.set_defaults(func=cmd_version)

    for name, text in (
        ("run", "run in the foreground"),
        ("check", "validate the configuration"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
        p.set_defaults(func=cmd_not_yet)

    for name, text in (("reload", "reload the running server"), ("status", "show upstreams")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=cmd_not_yet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
