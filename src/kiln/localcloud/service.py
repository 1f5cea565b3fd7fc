"""Running localcloud: the state folder, its lock, the first access key, and the server's life."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shlex
import signal
from pathlib import Path
from typing import IO

from aiohttp import web

from kiln import paths
from kiln.errors import KilnError
from kiln.localcloud.backend import InstanceBackend, NoMachines
from kiln.localcloud.incoming import HANDLER_LIMITS
from kiln.localcloud.model.cloud import DEFAULT_REGION, Cloud
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import AccessKey, Store, private_file, state_folder

log = logging.getLogger("kiln.localcloud")

DEFAULT_PORT = 8720
RUNNERS = ("light", "vm", "none")


def default_state_dir() -> Path:
    return paths.state_dir() / "localcloud"


def open_store(state_dir: Path) -> Store:
    store = Store(state_folder(state_dir) / "localcloud.sqlite3")
    if not store.access_keys():
        store.create_key()
    return store


def first_key(store: Store) -> AccessKey:
    return next(k for k in store.access_keys() if k.security_token is None)


def endpoint_file(state_dir: Path) -> Path:
    return state_dir / "server.json"


def read_endpoint(state_dir: Path) -> dict[str, object] | None:
    """The running server's {pid, url, port, runner}, or None when none runs for this state folder."""
    try:
        info: dict[str, object] = json.loads(endpoint_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


#: Loopback never goes through the proxy (Go and requests read CIDRs, urllib and the Go SDK names).
NO_PROXY = "localhost,127.0.0.1,::1,127.0.0.0/8"


def shell_env(state_dir: Path, key: AccessKey, url: str, region: str) -> str:
    """The `export` line of `kiln localcloud env`: credentials in the names Packer, Terraform, the
    aliyun CLI and the SDKs read; localcloud as their HTTP and HTTPS proxy; its CA (in a bundle with
    the system's CAs, since SSL_CERT_FILE replaces the system bundle) where Go, OpenSSL, Python
    requests, the old Python SDK, curl and Node look for one."""
    from kiln.localcloud.tls import Authority, bundle_file, ca_file

    if not bundle_file(state_dir).exists():
        Authority(state_dir)  # the server makes it at its first start; so does this
    bundle, ca = str(bundle_file(state_dir)), str(ca_file(state_dir))
    values = {
        "ALICLOUD_ACCESS_KEY": key.access_key_id,
        "ALICLOUD_SECRET_KEY": key.secret,
        "ALICLOUD_REGION": region,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": key.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key.secret,
        "ALIBABA_CLOUD_REGION_ID": region,
        **{name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
        "NO_PROXY": NO_PROXY,
        "no_proxy": NO_PROXY,
        **{name: bundle for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")},
        "ALIBABA_CLOUD_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": ca,
        "KILN_OSS_ENDPOINT": url,  # OSS at localcloud's own address, for clients given an endpoint
    }
    # These lines exist to be eval'd by the user's shell: printing the secret is the point.
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items()) + "\n"


def make_backend(runner: str, state_dir: Path) -> InstanceBackend:
    if runner == "none":
        return NoMachines()
    if runner in ("light", "vm"):
        from kiln.localcloud.machines_backend import MachinesBackend

        return MachinesBackend(runner, state_dir)
    raise KilnError(f"--runner {runner!r} is not a runner", f"use one of {', '.join(RUNNERS)}")


def _lock(state_dir: Path) -> IO[str]:
    handle = os.fdopen(private_file(state_dir / "lock", os.O_WRONLY), "w")  # held for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise KilnError(
            f"another localcloud already serves {state_dir}",
            "stop it first, or give this one its own --state folder",
        ) from None
    return handle


async def serve(
    state_dir: Path,
    host: str,
    port: int,
    runner: str,
    profile: LatencyProfile,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; the bound address is written to state_dir/server.json."""
    lock = _lock(state_folder(state_dir))
    store = open_store(state_dir)
    backend = make_backend(runner, state_dir)
    cloud = Cloud(state_dir, store, backend, profile)
    from kiln.localcloud.server import Server

    server = Server(cloud, listen=host)
    from kiln.localcloud.front import Front, handler_factory
    from kiln.localcloud.tls import Authority

    authority = Authority(state_dir)
    handler_args: dict[str, object] = {"access_log": None, **HANDLER_LIMITS}
    runner_ = web.AppRunner(server.app, handle_signals=False, **handler_args)  # type: ignore[arg-type]
    await runner_.setup()
    assert runner_.server is not None
    make_handler = handler_factory(runner_.server, **handler_args)
    loop = asyncio.get_running_loop()
    try:
        listener = await loop.create_server(
            lambda: Front(make_handler, authority, server.refusal), host, port, reuse_address=True
        )
    except OSError as err:
        await runner_.cleanup()
        raise KilnError(
            f"cannot listen on {host}:{port}: {err.strerror}", "pick another --listen port"
        ) from None
    bound = server.port = int(listener.sockets[0].getsockname()[1])
    await cloud.recover()
    cloud.spawn(backend.prepare())
    info = {
        "pid": os.getpid(),
        "url": f"http://{host}:{bound}",
        "host": host,
        "port": bound,
        "runner": backend.name,
        "region": DEFAULT_REGION,
    }
    tmp = paths.write_private(endpoint_file(state_dir).with_suffix(".tmp"), json.dumps(info).encode())
    tmp.replace(endpoint_file(state_dir))
    log.info("localcloud serving on http://%s:%d (runner %s, state %s)", host, bound, backend.name, state_dir)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(OSError):
            if json.loads(endpoint_file(state_dir).read_text()).get("pid") == os.getpid():
                endpoint_file(state_dir).unlink()
        listener.close()
        await runner_.cleanup()
        await cloud.close()
        store.close()
        lock.close()
