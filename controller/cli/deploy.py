"""`ccctl asterisk-conf render`: the snippets to add to an existing Asterisk."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.deploy.render import SnippetValues, render_node_trunks, render_service_unit, write_snippets
from controller.settings import SettingsError


def cmd_render(args: argparse.Namespace) -> int:
    if args.config:
        try:
            phones = args.phones.split(",") if args.phones else None
            values = SnippetValues.from_config(load_config(args.config), phones)
        except SettingsError as exc:
            print("\n".join(exc.problems))
            return 2
    else:
        values = SnippetValues()
    for path in write_snippets(Path(args.out), values, repository_layout=args.repository_layout):
        print(path)
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """Print the trunks and dialplan one node needs to reach the others (README "Several Asterisk servers")."""
    try:
        parts = render_node_trunks(load_config(args.config), args.node)
    except SettingsError as exc:
        print("\n".join(exc.problems))
        return 2
    except ValueError as exc:
        print(exc)
        return 2
    print(f"; --- pjsip.conf (add) ---\n{parts['pjsip.conf']}\n; --- dialplans/ccc-nodes.conf ---\n"
          f"{parts['ccc-nodes.conf']}", end="")
    return 0


def cmd_unit(args: argparse.Namespace) -> int:
    print(render_service_unit(args.venv, args.config, args.unit), end="")
    return 0


def register(sub: Any) -> None:
    service = sub.add_parser("service", help="running the controller as a systemd service")
    service_actions = service.add_subparsers(dest="action", required=True)
    unit = service_actions.add_parser("unit", help="print the systemd unit for this install")
    unit.add_argument("--venv", default="/opt/ccc/venv", help="the virtual environment the controller is in")
    unit.add_argument("--config", default="/etc/ccc/controller.yaml", help="the configuration file")
    unit.add_argument("--unit", choices=["ccc-controller", "ccc-guard"], default="ccc-controller",
                      help="which unit: the controller, or the guard that runs beside it")
    unit.set_defaults(func=cmd_unit)

    group = sub.add_parser("asterisk-conf", help="Asterisk configuration for the controller")
    actions = group.add_subparsers(dest="action", required=True)
    render = actions.add_parser("render", help="write ari/http/manager/queues/voicemail.conf and the dialplan")
    render.add_argument("--out", required=True, help="directory to write into")
    render.add_argument("--config", default=os.environ.get("CCC_CONFIG"),
                        help="controller configuration to take names and credentials from (default: demo values)")
    render.add_argument("--phones", help="agent endpoints the fallback queue rings, e.g. 8001,8002")
    render.add_argument("--repository-layout", action="store_true",
                        help="write into OUT/asterisk-conf and OUT/dialplans (regenerates the sandbox's files)")
    render.set_defaults(func=cmd_render)
    nodes = actions.add_parser("nodes", help="print the PJSIP trunks and dialplan a node needs to reach the others")
    nodes.add_argument("--config", default=os.environ.get("CCC_CONFIG"), required=not os.environ.get("CCC_CONFIG"),
                       help="controller configuration with `nodes:`")
    nodes.add_argument("--node", required=True, help="the node to render for")
    nodes.set_defaults(func=cmd_nodes)
