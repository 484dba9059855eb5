"""``netbpf lab up|down|show`` and ``netbpf lab demo``."""
from __future__ import annotations

import argparse

from . import Lab

EXAMPLES = """\
examples:
  netbpf lab up                    client, gateway and 3 backends (namespaces nb-*)
  netbpf lab up --vxlan            the same with VXLAN between gateway and backends
  ip netns exec nb-client curl http://10.0.11.2/    talk to backend 1 through the gateway
  netbpf lab demo                  build the lab and show every tool on live traffic
  netbpf lab down                  remove it all (idempotent)
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lab", help="network namespaces for trying the tools (client, gateway, backends)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["up", "down", "show", "demo"])
    p.add_argument("--prefix", default="nb", help="namespace name prefix (default: nb)")
    p.add_argument("--backends", type=int, default=3, help="number of backends (default: 3)")
    p.add_argument("--vxlan", action="store_true", help="VXLAN between the gateway and the backends")
    p.add_argument("--keep", action="store_true", help="demo: leave the lab up afterwards")
    p.set_defaults(func=run, needs_root=True)


def run(args: argparse.Namespace) -> int:
    lab = Lab(args.prefix, args.backends, args.vxlan)
    if args.action == "up":
        lab.up()
        lab.wait_reachable()
        print(lab.describe())
    elif args.action == "down":
        lab.down()
        print(f"lab {args.prefix} removed")
    elif args.action == "show":
        print(lab.describe() if lab.exists() else f"lab {args.prefix} is not up")
    else:
        from .demo import run_demo

        return run_demo(lab, keep=args.keep)
    return 0
