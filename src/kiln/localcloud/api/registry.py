"""The registry of actions: each is declared once, with the products whose API has it, next to its handler.

    @action("CreateVpc", ECS, VPC)
    async def create_vpc(cloud: Cloud, call: Call) -> Json: ...

A product is one RPC API (its name and Version); the RPC front door finds an action by the
request's Version and Action, so a VPC call of RunInstances is `InvalidAction.NotFound`, as on the
real endpoints. localcloud's own admin actions (`Kiln*`) are the `Kiln` product, in the same registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiln.localcloud import errors

if TYPE_CHECKING:
    from kiln.localcloud.api.request import Call
    from kiln.localcloud.model.cloud import Cloud

Json = dict[str, Any]
Handler = Callable[["Cloud", "Call"], Awaitable[Json]]


@dataclass(frozen=True)
class Product:
    name: str  # as the error's Recommend names it
    version: str
    emulated: bool = True  # latency profile and injected faults apply; ClientToken is honoured


ECS = Product("Ecs", "2014-05-26")
VPC = Product("Vpc", "2016-04-28")
RAM = Product("Ram", "2015-05-01")
ADMIN = Product("Kiln", "kiln-localcloud", emulated=False)
PRODUCTS = {p.version: p for p in (ECS, VPC, RAM, ADMIN)}


@dataclass(frozen=True)
class Action:
    name: str
    products: frozenset[Product]
    handler: Handler


ACTIONS: dict[str, Action] = {}


def action(name: str, *products: Product) -> Callable[[Handler], Handler]:
    """Register the decorated handler as `name` for `products`."""

    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"action {name} is declared twice")
        ACTIONS[name] = Action(name, frozenset(products), handler)
        return handler

    return register


def find(product: Product, name: str) -> Action:
    """The action `name` of `product` (the server imports `kiln.localcloud.actions`, which declares them)."""
    found = ACTIONS.get(name)
    if found is None or product not in found.products:
        raise errors.ACTION_NOT_FOUND()
    return found
