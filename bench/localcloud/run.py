#!/usr/bin/env python3
"""localcloud benchmark: DescribeInstances latency with 1,000 instances, throughput with 50 concurrent
clients, and RunInstances-to-SSH time per runner, all through the official Tea SDK over HTTP.

    bench/localcloud/run.py [--runners none,light,vm] [--calls 500] [--seconds 10]

Baselines measured in the same run: DescribeRegions (a call that touches no state) for the latency,
one client for the throughput, and the same machine started directly through kiln.machines (no API,
no forwarding) for RunInstances-to-SSH. The real cloud cannot be reached from here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, sdkcalls, start
from kiln.localcloud.sdkcalls import instance_status, run_instances
from kiln.localcloud.sshlogin import ssh_argv

REGION = "cn-beijing"


def config(cloud: LocalCloudProcess) -> Config:
    return Config(
        access_key_id=cloud.access_key_id,
        access_key_secret=cloud.secret,
        region_id=REGION,
        endpoint=cloud.endpoint,
        protocol="http",
        read_timeout=120000,
        connect_timeout=5000,
    )


def wait(probe, timeout: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def network(client: EcsClient, vpc: VpcClient) -> tuple[str, str]:
    # 1,000 instances want more addresses than a /24
    _, vsw, group = sdkcalls.network(
        client,
        vpc,
        lambda _what, probe: wait(probe),
        cidr="10.0.0.0/8",
        vswitch_cidr="10.0.0.0/16",
    )
    return vsw, group


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn, calls: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(calls):
        began = time.perf_counter()
        fn()
        out.append((time.perf_counter() - began) * 1000)
    return out


def api_bench(root: Path, calls: int, seconds: float) -> None:
    with start(root / "api", runner="none") as cloud:
        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        vsw, group = network(client, vpc)
        began = time.perf_counter()
        ids: list[str] = []
        for _ in range(10):
            ids.extend(run_instances(client, vsw, group, amount=100))
        print(
            f"state: {len(ids)} instances created in {time.perf_counter() - began:.1f} s (10 RunInstances of 100)"
        )
        wait(
            lambda: (
                client.describe_instance_status(
                    ecs.DescribeInstanceStatusRequest(region_id=REGION, page_size=50)
                )
                .body.instance_statuses.instance_status[-1]
                .status
                == "Running"
            )
        )
        base = timed(lambda: client.describe_regions(ecs.DescribeRegionsRequest()), calls)
        page100 = timed(
            lambda: client.describe_instances(ecs.DescribeInstancesRequest(region_id=REGION, page_size=100)),
            calls,
        )
        one = timed(
            lambda: client.describe_instances(
                ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([ids[500]]))
            ),
            calls,
        )
        b50, b99 = percentiles(base)
        print(f"DescribeRegions (baseline, no state)        p50 {b50:6.2f} ms  p99 {b99:6.2f} ms")
        for label, samples in (
            ("DescribeInstances PageSize=100 of 1,000", page100),
            ("DescribeInstances one id of 1,000", one),
        ):
            p50, p99 = percentiles(samples)
            print(f"{label:<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({p50 / b50:.1f}x baseline p50)")

        def load(clients: int) -> float:
            count = [0] * clients
            stop = time.monotonic() + seconds

            def worker(n: int) -> None:
                own = EcsClient(config(cloud))
                while time.monotonic() < stop:
                    own.describe_instances(ecs.DescribeInstancesRequest(region_id=REGION, page_size=10))
                    count[n] += 1

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(count) / seconds

        single = load(1)
        fifty = load(50)
        print(
            f"throughput DescribeInstances (1,000 in state): 1 client {single:7.1f} req/s, 50 clients {fifty:7.1f} req/s "
            f"({fifty / single:.2f}x); clients and server share {os.cpu_count()} cores, clients are Python threads"
        )


def direct_machine_to_ssh(runner: str) -> float:
    from kiln.machines import MachineSpec, create_machine
    from kiln.machines.baseimage import build_base_image
    from kiln.machines.spec import Metadata

    with tempfile.TemporaryDirectory(prefix="kiln-bench-key-") as tmp:
        key_dir = Path(tmp)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_dir / "k")], check=True)
        spec = MachineSpec(
            image=build_base_image("debian-12"),
            name="bench",
            cpus=1,
            memory_mb=1024,
            metadata=Metadata(ssh_authorized_keys=((key_dir / "k.pub").read_text().strip(),)),
        )
        began = time.monotonic()
        with create_machine(spec, runner="namespace" if runner == "light" else "vm") as machine:  # type: ignore[arg-type]
            machine.start()
            ssh_wait(key_dir / "k", machine.ssh_host, machine.ssh_port)
            return time.monotonic() - began


def ssh_wait(key: Path, host: str, port: int = 22, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            ssh_argv(key, host, "true", port=port, connect_timeout=3),
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"no SSH to {host}:{port}")
        time.sleep(0.1)


def machine_bench(root: Path, runner: str) -> None:
    with start(root / runner, runner=runner, timeout=300) as cloud:
        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        vsw, group = network(client, vpc)
        pair = client.create_key_pair(ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name="bench")).body
        key = root / f"{runner}.pem"
        key.write_text(pair.private_key_body + "\n")
        key.chmod(0o600)
        began = time.monotonic()
        iid = run_instances(client, vsw, group, instance_type="ecs.t5-lc1m1.small", key_pair_name="bench")[0]
        wait(lambda: instance_status(client, iid) == "Running")
        running = time.monotonic() - began
        address = client.allocate_public_ip_address(
            ecs.AllocatePublicIpAddressRequest(instance_id=iid)
        ).body.ip_address
        ssh_wait(key, address)
        total = time.monotonic() - began
        client.delete_instance(ecs.DeleteInstanceRequest(instance_id=iid, force=True))
    direct = direct_machine_to_ssh(runner)
    print(
        f"RunInstances-to-SSH, runner {runner:<5}: {total:6.1f} s (Running after {running:.1f} s); "
        f"same machine started directly: {direct:6.1f} s ({total / direct:.2f}x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runners", default="light,vm", help="machine runners to time (light, vm); empty for none"
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kiln-bench-localcloud-"))
    os.environ.setdefault("KILN_STATE_DIR", str(root / "state"))
    try:
        api_bench(root, args.calls, args.seconds)
        for runner in [r for r in args.runners.split(",") if r]:
            machine_bench(root, runner)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
