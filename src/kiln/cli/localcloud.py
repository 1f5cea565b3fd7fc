"""`kiln localcloud serve | env | keys create`: the local Alibaba Cloud ECS + VPC emulator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kiln.cli.args import Parser, wants_help

HELP = """Usage: kiln localcloud <subcommand> [options]

  serve [--listen 127.0.0.1:PORT] [--state DIR] [--runner light|vm|none] [--profile P]
        Run the emulator (default 127.0.0.1:8720; state in $KILN_STATE_DIR/localcloud).
        --runner: light = namespace machines (default), vm = QEMU, none = records only.
        --profile: fast (default), cloud, or name=seconds,... e.g. call=0.1,instance_start=10,image_create=20
  env [--state DIR]
        Print the shell lines that point Packer, kiln, Terraform, the aliyun CLI and the SDKs at the
        emulator (credentials, HTTP(S)_PROXY for *.aliyuncs.com, its CA): eval "$(kiln localcloud env)"
  keys create [--state DIR] [--sts]
        Make another access key pair (with --sts, one that needs a security token).
  keys list [--state DIR]
        List access key ids (never secrets).
  fault add --action GLOB [--code CODE] [--status N] [--count N] [--rate R] [--latency-ms MS]
            [--max-per-second N] [--state DIR]
        Make the running server fail (or slow down, or throttle) matching calls.
  fault list | fault clear [--state DIR]
  log [--limit N] [--state DIR]
        The request log: time, action, outcome (never parameters or secrets).
"""


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host, int(port)


def main(argv: list[str]) -> int:
    # Packer's single-dash -help as well as -h/--help, after the subcommand too (`serve -help`).
    if not argv or argv[0] == "help" or wants_help(argv):
        sys.stdout.write(HELP)
        return 0 if argv else 1
    from kiln.errors import KilnError

    try:
        return _run(argv)
    except KilnError as err:
        sys.stderr.write(f"Error: {err.render()}\n")
        return 1


def _run(argv: list[str]) -> int:
    from kiln.localcloud import service

    parser = Parser(prog="kiln localcloud")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("--listen", type=_listen, default=("127.0.0.1", service.DEFAULT_PORT))
    serve.add_argument("--state", type=Path)
    serve.add_argument("--runner", choices=service.RUNNERS, default="light")
    serve.add_argument("--profile", default="fast")
    env = sub.add_parser("env")
    env.add_argument("--state", type=Path)
    keys = sub.add_parser("keys")
    keys_sub = keys.add_subparsers(dest="keys_command")
    create = keys_sub.add_parser("create")
    create.add_argument("--state", type=Path)
    create.add_argument("--sts", action="store_true")
    listing = keys_sub.add_parser("list")
    listing.add_argument("--state", type=Path)
    fault = sub.add_parser("fault")
    fault_sub = fault.add_subparsers(dest="fault_command")
    add = fault_sub.add_parser("add")
    add.add_argument("--action", default="*")
    add.add_argument("--code", default="")
    add.add_argument("--status", default="")
    add.add_argument("--count", default="")
    add.add_argument("--rate", default="")
    add.add_argument("--latency-ms", default="")
    add.add_argument("--max-per-second", default="")
    for name in ("list", "clear"):
        fault_sub.add_parser(name).add_argument("--state", type=Path)
    add.add_argument("--state", type=Path)
    request_log = sub.add_parser("log")
    request_log.add_argument("--limit", default="50")
    request_log.add_argument("--state", type=Path)
    args = parser.parse_args(argv)
    state_dir: Path = args.state or service.default_state_dir()
    if args.command == "serve":
        import asyncio
        import logging

        from kiln.localcloud.profile import LatencyProfile

        logging.basicConfig(level=logging.INFO, format="%(asctime)s localcloud: %(message)s")
        profile = LatencyProfile.parse(args.profile)
        host, port = args.listen
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            sys.stderr.write(
                f"localcloud: listening on {host}, reachable beyond this machine; every API call still needs a signature\n"
            )
        asyncio.run(service.serve(state_dir, host, port, args.runner, profile))
        return 0
    if args.command == "env":
        store = service.open_store(state_dir)
        key = service.first_key(store)
        store.close()
        info = service.read_endpoint(state_dir)
        url = str(info["url"]) if info else f"http://127.0.0.1:{service.DEFAULT_PORT}"
        region = str(info.get("region", "cn-beijing")) if info else "cn-beijing"
        if info is None:
            sys.stderr.write(
                f"localcloud: no server runs for {state_dir}; start one with `kiln localcloud serve`\n"
            )
        sys.stdout.write(service.shell_env(state_dir, key, url, region))
        return 0
    if args.command == "keys" and args.keys_command == "create":
        store = service.open_store(state_dir)
        new = store.create_key(sts=args.sts)
        store.close()
        line = f"access key id: {new.access_key_id}\nsecret: {new.secret}\n"
        if new.security_token:
            line += f"security token: {new.security_token}\n"
        sys.stdout.write(line)
        return 0
    if args.command == "keys" and args.keys_command == "list":
        store = service.open_store(state_dir)
        for k in store.access_keys():
            sys.stdout.write(f"{k.access_key_id}{'  (sts)' if k.security_token else ''}\n")
        store.close()
        return 0
    if args.command in ("fault", "log"):
        return _admin(args, state_dir)
    sys.stderr.write(HELP)
    return 1


def _admin(args: argparse.Namespace, state_dir: Path) -> int:
    """Signed calls to the running server with its first access key."""
    import json

    from kiln.errors import KilnError
    from kiln.localcloud import client, service

    info = service.read_endpoint(state_dir)
    if info is None:
        raise KilnError(f"no localcloud runs for {state_dir}", "start one with `kiln localcloud serve`")
    store = service.open_store(state_dir)
    key = service.first_key(store)
    store.close()
    if args.command == "log":
        action, params = "KilnDescribeRequestLog", {"Limit": args.limit}
    elif args.fault_command == "add":
        action = "KilnInjectFault"
        fields = {
            "TargetAction": args.action,
            "Code": args.code,
            "HttpStatus": args.status,
            "Count": args.count,
            "Rate": args.rate,
            "LatencyMs": args.latency_ms,
            "MaxPerSecond": args.max_per_second,
        }
        params = {k: v for k, v in fields.items() if v}
    elif args.fault_command == "clear":
        action, params = "KilnClearFaults", {}
    elif args.fault_command == "list":
        action, params = "KilnDescribeFaults", {}
    else:
        sys.stderr.write(HELP)
        return 1
    answer = client.call(
        str(info["url"]), key.access_key_id, key.secret, action, params, version=client.ADMIN_VERSION
    )
    body = answer.json()
    if answer.status != 200:
        raise KilnError(
            f"{action}: {body.get('Code')}: {body.get('Message')}", "see `kiln localcloud --help`"
        )
    if args.command == "log":
        for entry in reversed(body["Requests"]["Request"]):
            sys.stdout.write(
                f"{entry['Time']}  {entry['Action']:<32} {entry['HttpStatus']} {entry['Code'] or 'OK':<28} "
                f"{entry['Millis']:8.1f} ms  {entry['Signature']}\n"
            )
        return 0
    body.pop("RequestId", None)
    sys.stdout.write(json.dumps(body, indent=2) + "\n")
    return 0
