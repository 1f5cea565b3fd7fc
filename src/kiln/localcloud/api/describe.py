"""One declarative helper for the Describe (and List) actions: what is listed, its filters, paging, list keys.

    action("DescribeVpcs", ECS, VPC)(
        Describe("Vpcs.Vpc", kind="vpc", view=views.vpc, max_page_size=50,
                 filters=(AnyOf("VpcId"), Equals("VpcName"), Tags())))

A filter is built from the request and is left out when the request does not give its parameter,
so listing 1,000 instances stays cheap. Paging is the real API's: PageNumber / PageSize (with
TotalCount) or, for the List actions, NextToken.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kiln.localcloud.api import views
from kiln.localcloud.api.registry import Json

if TYPE_CHECKING:
    from kiln.localcloud.api.request import Call
    from kiln.localcloud.model.cloud import Cloud

Item = Mapping[str, Any]
Test = Callable[[Item], bool]


class Filter:
    """A request parameter that narrows the list; `test` is None when the request does not give it."""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Equals(Filter):
    """`param` equals the item's `field` (default: the same name)."""

    param: str
    field: str = ""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        wanted, field = call.get(self.param), self.field or self.param
        return None if wanted is None else lambda item: item.get(field) == wanted


@dataclass(frozen=True)
class AnyOf(Filter):
    """The item's `field` is one of the ids in `param` (`Name.N`, a JSON array, or comma-separated),
    or in the parameters `also` names."""

    param: str
    field: str = ""
    also: tuple[str, ...] = ()

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        wanted, field = call.id_set(self.param), self.field or self.param
        for other in self.also:
            wanted |= call.id_set(other)
        return (lambda item: item.get(field) in wanted) if wanted else None


@dataclass(frozen=True)
class Overlaps(Filter):
    """One of the item's `values` is among the ids in `param` (any of the list forms)."""

    param: str
    values: Callable[[Item], Iterable[Any]]

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        wanted = call.id_set(self.param)
        return (lambda item: not wanted.isdisjoint(self.values(item))) if wanted else None


@dataclass(frozen=True)
class Glob(Filter):
    """The item's `field` matches `param`, a shell-style pattern (`build-*`)."""

    param: str
    field: str = ""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        pattern, field = call.get(self.param), self.field or self.param
        if pattern is None:
            return None
        return lambda item: fnmatch.fnmatchcase(str(item.get(field, "")), pattern)


@dataclass(frozen=True)
class Fuzzy(Filter):
    """The item's `field` contains `param` (the API's "fuzzy search": DescribeImages' ImageName)."""

    param: str
    field: str = ""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        part, field = call.get(self.param), self.field or self.param
        return None if part is None else lambda item: part in str(item.get(field, ""))


@dataclass(frozen=True)
class Where(Filter):
    """Any other rule: `rule(value, item)` for the value of `param`."""

    param: str
    rule: Callable[[str, Item], bool]

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        value = call.get(self.param)
        return None if value is None else lambda item: self.rule(value, item)


@dataclass(frozen=True)
class Tags(Filter):
    """`Tag.N.Key` / `Tag.N.Value`: the item has every tag asked for (any value when Value is empty)."""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        wanted = call.tags()
        return (lambda item: views.has_tags(item, wanted)) if wanted else None


Source = Callable[["Cloud", "Call", "str | None"], Iterable[Item]]
View = Callable[["Cloud", Item], Json]
Extra = Callable[["Cloud", "Call", "str | None"], Json]


def _as_is(cloud: Cloud, item: Item) -> Json:
    return dict(item)


@dataclass(frozen=True)
class Describe:
    """A Describe action. `list_key` is where the page goes (`"Vpcs.Vpc"` -> {"Vpcs": {"Vpc": [...]}})."""

    list_key: str
    kind: str = ""  # the model kind listed, in the request's region; or:
    source: Source | None = None  # what is listed, when it is not one kind's resources
    filters: tuple[Filter, ...] = ()
    view: View = _as_is
    newest_first: bool = False
    paging: Literal["pages", "token"] = "pages"
    page_size: int = 10
    max_page_size: int = 100
    extra: Extra | None = None  # more fields of the answer
    size_param: str = ""  # token paging: the parameter giving the page size (MaxResults), if any
    regional: bool = True  # RegionId is required
    omit: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # product -> view fields its API lacks

    async def __call__(self, cloud: Cloud, call: Call) -> Json:
        region = call.require_region() if self.regional else call.region
        tests = [t for f in self.filters if (t := f.test(cloud, call)) is not None]
        items = self.source(cloud, call, region) if self.source else cloud.items(self.kind, region)
        found = list(items)
        for test in tests:  # one pass per filter given: each narrows the list for the next
            found = [item for item in found if test(item)]
        if self.newest_first:
            found.sort(key=lambda item: float(item["_created"]), reverse=True)
        chunk, paging = self._page(call, found)
        outer, _, inner = self.list_key.partition(".")
        shown = [self.view(cloud, item) for item in chunk]
        for left_out in self.omit.get(call.product, ()):
            for item in shown:
                item.pop(left_out, None)
        answer: Json = {outer: {inner: shown}, **paging}
        if self.extra is not None:
            answer.update(self.extra(cloud, call, region))
        return answer

    def _page(self, call: Call, found: list[Item]) -> tuple[list[Item], Json]:
        if self.paging == "token":
            raw = call.get("NextToken") or "0"
            start = int(raw) if raw.isdigit() else 0
            size = self.page_size
            if self.size_param:
                size = call.integer(self.size_param, self.page_size, low=1, high=self.max_page_size)
            end = start + size
            return found[start:end], {"NextToken": str(end) if end < len(found) else ""}
        number = call.integer("PageNumber", 1, low=1)
        size = call.integer("PageSize", self.page_size, low=1, high=self.max_page_size)
        chunk = found[(number - 1) * size : number * size]
        return chunk, {"TotalCount": len(found), "PageNumber": number, "PageSize": size}
