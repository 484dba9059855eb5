"""``netbpf lab up|down|show`` and ``netbpf lab demo``.

The demo's scenes, and their order, come from the tool registry: this module stands above
the tools, as ``cli.py`` and ``status_cli.py`` do; ``lab/`` stands below them (the tools'
scenes use its servers and its stage).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from . import tools
from .errors import UsageError
from .lab import Lab
from .lab.demo import Demo

EXAMPLES = """\
examples:
  netbpf lab up                    client, gateway and 3 backends (namespaces nb-*), with servers
  netbpf lab up --vxlan            the same with VXLAN between gateway and backends
  netbpf lab up --weights 5,1,1    nginx on the gateway sends backend 1 five times the others' share
  ip netns exec nb-client curl http://10.0.1.1/         through nginx on the gateway to a backend
  ip netns exec nb-client curl http://10.0.11.2:8080/   straight to backend 1 (routed by the gateway)
  ip netns exec nb-client iperf3 -c 10.0.11.2 -t 3      to the iperf3 server on backend 1
  netbpf lab show                  what is up, and what listens
  netbpf lab demo                  build the lab and show every tool on live traffic
  netbpf lab down                  remove it all, servers included (idempotent)

servers (unless --no-servers): an HTTP server on port 8080 of every backend (the path picks the
answer: /x?size=N&status=S), nginx on 10.0.1.1:80 balancing over them, iperf3 -s on backend 1.
"""


def _weights(text: str) -> list[int]:
    try:
        weights = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights are integers separated by commas, not {text!r}") from None
    if any(not 1 <= w <= 100 for w in weights):
        raise argparse.ArgumentTypeError("each weight is 1 to 100")
    return weights


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lab", help="network namespaces for trying the tools (client, gateway, backends)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["up", "down", "show", "demo"])
    p.add_argument("--prefix", default="nb", help="namespace name prefix (default: nb)")
    p.add_argument("--backends", type=int, default=3, help="number of backends (default: 3)")
    p.add_argument("--vxlan", action="store_true", help="VXLAN between the gateway and the backends")
    p.add_argument("--weights", type=_weights, metavar="W,...",
                   help="up: nginx's weight for each backend (default: even)")
    p.add_argument("--no-servers", action="store_true", help="up: namespaces and links only, no servers")
    p.add_argument("--keep", action="store_true", help="demo: leave the lab up afterwards")
    p.set_defaults(func=run, needs_root=True)


def run(args: argparse.Namespace) -> int:
    from .lab import servers

    lab = Lab(args.prefix, args.backends, args.vxlan)
    if args.weights is not None and len(args.weights) != args.backends:
        raise UsageError(f"--weights: one weight per backend ({args.backends}), got {len(args.weights)}")
    if args.action == "up":
        lab.up()
        lab.wait_reachable()
        if not args.no_servers:
            servers.start_services(lab, args.weights)
        print(lab.describe())
        print(servers.describe_services(lab))
    elif args.action == "down":
        (Lab.find(args.prefix) or lab).down()
        servers.remove_services(lab)
        print(f"lab {args.prefix} removed")
    elif args.action == "show":
        found = Lab.find(args.prefix)
        if found is None:
            print(f"lab {args.prefix} is not up")
        else:
            print(found.describe())
            print(servers.describe_services(found))
    else:
        return run_demo(lab, keep=args.keep)
    return 0


def scenes() -> list[tuple[str, Callable[[Demo], None]]]:
    """Each tool's scene, in the order of ``netbpf --help``."""
    found: list[tuple[str, Callable[[Demo], None]]] = []
    for name in tools.TOOLS:
        try:
            module = tools.module(name, "demo")
        except ModuleNotFoundError as e:
            if e.name != f"{tools.__name__}.{name}.demo":
                raise
            continue
        found.append((name, module.scene))
    return found


def run_demo(lab: Lab, keep: bool = False) -> int:
    demo = Demo(lab)
    demo.title("The lab: network namespaces joined by veth pairs")
    if Lab.find(lab.prefix) is not None:
        # the scenes start their own servers, on the ports `lab up`'s servers hold
        demo.say(f"lab {lab.prefix} was up: built again for the demo, without its servers")
        lab.down()
    lab.up()
    lab.wait_reachable()
    demo.say(lab.describe().replace("\n", "\n   "))
    demo.run(["ping", "-c", "2", "-i", "0.2", lab.backends[0].ip if lab.backends else lab.GATEWAY_IP],
             netns=lab.client)
    try:
        for _name, scene in scenes():
            scene(demo)
        demo.title("What netbpf has attached now (every tool cleaned up after itself)")
        demo.run(["netbpf", "status"])
    finally:
        if not keep:
            lab.down()
            print(f"\nlab {lab.prefix} removed")
    return 0
