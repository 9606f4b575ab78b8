"""The baseline: the same rules run the way most alert managers run them, one event at a time.

Every rule's `when` is a plain Python function (bench.dsl.baseline translates each condition
once to Python source); for each event, every rule is tried. State lives in per-key dicts, window
contents in per-key deques, and timers (`for`, `resolve after`, absence deadlines, window
expiries) in one heap. It follows the same time model as the engine (DSL.md §4.1): an event's
instant is max(ts, watermark), events at an instant apply before the timers due at it, and late
events are ignored by windows, absence and `new within` rules. Routes, silences and inhibits
are applied to every fired alert.

It keeps no more than it needs to decide fires and resolves (no templates, no incidents), so
its speed is an upper bound for a per-event design.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bench.dsl.baseline import _n, predicates
from dsl import ast
from dsl.compiler import compile_during
from dsl.parser import parse

Event = dict[str, Any]
Transition = tuple[int, str, tuple[str, ...], str]  # (at µs, rule, key, fired|resolved)

_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
# Heap entry kinds, in the order they run within one instant: window evaluations first.
_EVAL, _HOLD, _RESOLVE_AFTER, _ABSENT, _WHOLD = range(5)


def _key_getter(fields: tuple[ast.Field, ...]) -> Any:
    names = [(isinstance(f, ast.Column), ast.field_name(f)) for f in fields]
    if not names:
        return lambda e: (e["fingerprint"] or "",)

    def get(e: Event) -> tuple[str, ...]:
        labels = e["labels"]
        return tuple(
            (e[name] or "") if is_col else labels.get(name, "") or "" for is_col, name in names
        )

    return get


def _field_reader(node: ast.Expr, as_text: bool) -> Any:
    if isinstance(node, ast.Column):
        name = node.name
        if as_text:
            return lambda e: e[name] or ""
        return lambda e: e[name]
    key = node.key if isinstance(node, ast.Label) else node.name  # type: ignore[union-attr]
    if as_text:
        return lambda e: e["labels"].get(key) or ""
    return lambda e: _n(e["labels"].get(key))


def _aggregate(name: str, q: float | None, width_s: float, items: Iterable[Any]) -> float | None:
    values = list(items)
    if name == "count":
        return float(len(values))
    if name == "rate":
        return len(values) / width_s
    if name == "count_distinct":
        return float(len({v for v in values if v != ""}))
    nums = [v for v in values if v is not None]
    if name == "sum":
        return float(sum(nums))
    if not nums:
        return None
    if name == "avg":
        return sum(nums) / len(nums)
    if name == "min":
        return min(nums)
    if name == "max":
        return max(nums)
    assert q is not None  # percentile, linear between the closest ranks
    nums.sort()
    pos = q * (len(nums) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(nums) - 1)
    return nums[lo] + (nums[hi] - nums[lo]) * (pos - lo)


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass
class _Alert:
    active: bool = False
    fired: bool = False
    t0: int = 0
    last_f: int | None = None
    count: int = 0


@dataclass
class _Rule:
    block: ast.RuleBlock
    kind: str
    when: Any
    key: Any
    hold: int
    resolve_after: int | None
    new_within: int | None
    absent: int | None
    width: int = 0
    reach: int = 0
    agg: tuple[str, float | None, Any] | None = None
    threshold: Any = None
    state: dict[tuple[str, ...], _Alert] = field(default_factory=dict)
    seen: dict[tuple[str, ...], int] = field(default_factory=dict)  # `new within` memory
    window: dict[tuple[str, ...], deque[tuple[int, Any]]] = field(default_factory=dict)
    evaluated: dict[tuple[str, ...], int] = field(default_factory=dict)


class Baseline:
    """Rules × events in Python; `feed(events)` and `advance(t)` return transitions."""

    def __init__(self, text: str) -> None:
        tree = parse(text, "<bench>")
        rules = tree.of_kind(ast.RuleBlock)
        preds = predicates([r.when for r in rules])
        self.rules: list[_Rule] = []
        for block, pred in zip(rules, preds, strict=True):
            kind = (
                "window"
                if block.window
                else "absent"
                if block.absent
                else "new"
                if block.new
                else "event"
            )
            rule = _Rule(
                block=block,
                kind=kind,
                when=pred,
                key=_key_getter(block.by),
                hold=block.hold.ms * 1000 if block.hold else 0,
                resolve_after=block.resolve_after.ms * 1000 if block.resolve_after else None,
                new_within=block.new.ms * 1000 if block.new else None,
                absent=block.absent.ms * 1000 if block.absent else None,
            )
            if block.window is not None:
                w = block.window
                rule.width = w.duration.ms * 1000
                rule.agg = self._agg(w.agg)
                prevs: list[Any] = []
                rule.threshold = self._threshold(w.threshold, prevs)
                rule.reach = rule.width * (2 if prevs else 1)
            self.rules.append(rule)
        self.horizon = max(
            [r.reach for r in self.rules] + [r.new_within or 0 for r in self.rules] + [0]
        )
        self.routes = tree.of_kind(ast.RouteBlock)
        self.route_preds = predicates([r.when for r in self.routes])
        silences = tree.of_kind(ast.SilenceBlock)
        self.silences = list(zip(silences, predicates([s.when for s in silences]), strict=True))
        self.during = {s.id.name: compile_during(s.during) for s in silences if s.during}
        inhibits = tree.of_kind(ast.InhibitBlock)
        self.inhibits = [
            (i, w, s, _key_getter(i.on))
            for i, w, s in zip(
                inhibits,
                predicates([i.when for i in inhibits]),
                predicates([i.while_ for i in inhibits]),
                strict=True,
            )
        ]
        # Per inhibit, the firing alerts its `while` matches, by their `on` values.
        self.sources: list[dict[tuple[str, ...], set[tuple[str, tuple[str, ...]]]]] = [
            {} for _ in self.inhibits
        ]
        self.source_of: dict[tuple[str, tuple[str, ...]], list[tuple[int, tuple[str, ...]]]] = {}
        self.watermark: int | None = None
        self.cur: int | None = None
        self.heap: list[tuple[int, int, int, int, tuple[str, ...]]] = []
        self.seq = 0
        self.out: list[Transition] = []
        self.late_events = 0
        self.muted = 0

    # ---------------------------------------------------------------- compile helpers

    def _agg(self, call: ast.Call) -> tuple[str, float | None, Any]:
        reader = None
        if call.args:
            reader = _field_reader(call.args[0], as_text=call.name == "count_distinct")
        return call.name, _QUANTILES.get(call.name), reader

    def _threshold(self, node: ast.Expr, prevs: list[Any]) -> Any:
        if isinstance(node, ast.Number):
            value = float(node.value)
            return lambda prev: value
        if isinstance(node, ast.Duration):
            value = node.ms / 1000
            return lambda prev: value
        if isinstance(node, ast.Neg):
            inner = self._threshold(node.operand, prevs)
            return lambda prev: None if (x := inner(prev)) is None else -x
        if isinstance(node, ast.Call) and node.name == "prev":
            idx = len(prevs)
            prevs.append(self._agg(node.args[0]))  # type: ignore[arg-type]
            spec = prevs[idx]
            return lambda prev: prev(spec)
        assert isinstance(node, ast.Arith)
        left, right = self._threshold(node.left, prevs), self._threshold(node.right, prevs)
        op = node.op

        def arith(prev: Any) -> float | None:
            a, b = left(prev), right(prev)
            if a is None or b is None:
                return None
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            return a / b if b != 0 else None

        return arith

    # ---------------------------------------------------------------- running

    def _push(self, at: int, kind: int, rule: int, key: tuple[str, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, rule, key))

    def feed(self, events: Iterable[Event]) -> list[Transition]:
        for e in events:
            ts = e["ts"]
            before = self.watermark
            t = ts if before is None else max(ts, before)
            late = before is not None and ts < before - self.horizon
            self.late_events += late
            if self.cur is not None and t > self.cur:
                self._run_timers(t)
            self.cur = t
            self.watermark = t
            firing = e["status"] == "firing"
            for i, rule in enumerate(self.rules):
                if not rule.when(e):
                    continue
                key = rule.key(e)
                if rule.kind == "event":
                    self._event(i, rule, key, t, firing, e)
                elif rule.kind == "new":
                    if firing and not late:
                        self._new(i, rule, key, t, e)
                elif rule.kind == "window":
                    if firing and not late and ts > t - rule.reach:
                        self._window_event(i, rule, key, t, ts, e)
                elif firing and not late:
                    self._absent_event(i, rule, key, t, e)
        out, self.out = self.out, []
        return out

    def advance(self, until: int) -> list[Transition]:
        self._run_timers(until + 1)
        self.cur = until if self.cur is None else max(self.cur, until)
        out, self.out = self.out, []
        return out

    def _run_timers(self, before: int) -> None:
        heap = self.heap
        while heap and heap[0][0] < before:
            at, kind, _, i, key = heapq.heappop(heap)
            rule = self.rules[i]
            if kind == _EVAL:
                self._evaluate(i, rule, key, at)
                continue
            a = rule.state.get(key)
            if a is None:
                continue
            if kind in (_HOLD, _WHOLD):
                if a.active and not a.fired and a.t0 + rule.hold == at:
                    self._fire(i, rule, key, at, a)
            elif kind == _RESOLVE_AFTER:
                if a.active and a.last_f is not None and a.last_f + rule.resolve_after == at:
                    self._end(rule, key, at, a)
            elif (
                kind == _ABSENT
                and not a.active
                and a.last_f is not None
                and a.last_f + rule.absent == at
            ):
                a.active, a.fired, a.t0 = True, False, at
                if rule.hold:
                    self._push(at + rule.hold, _HOLD, i, key)
                else:
                    self._fire(i, rule, key, at, a)

    def _fire(self, i: int, rule: _Rule, key: tuple[str, ...], at: int, a: _Alert) -> None:
        a.fired = True
        self.out.append((at, rule.block.id.name, key, "fired"))
        self._route(rule, key, at, a)

    def _end(self, rule: _Rule, key: tuple[str, ...], at: int, a: _Alert) -> None:
        if a.fired:
            self.out.append((at, rule.block.id.name, key, "resolved"))
            for j, value in self.source_of.pop((rule.block.id.name, key), ()):
                self.sources[j][value].discard((rule.block.id.name, key))
        a.active = a.fired = False
        a.count = 0

    # event rules and `new within`

    def _event(
        self, i: int, rule: _Rule, key: tuple[str, ...], t: int, firing: bool, e: Event
    ) -> None:
        a = rule.state.get(key)
        if a is None:
            a = rule.state[key] = _Alert()
        if not firing:
            if a.active:
                self._end(rule, key, t, a)
            return
        a.last_f = t
        a.event = e  # type: ignore[attr-defined]
        if rule.resolve_after is not None:
            self._push(t + rule.resolve_after, _RESOLVE_AFTER, i, key)
        if a.active:
            a.count += 1
            return
        a.active, a.fired, a.t0, a.count = True, False, t, 1
        if rule.hold:
            self._push(t + rule.hold, _HOLD, i, key)
        else:
            self._fire(i, rule, key, t, a)

    def _new(self, i: int, rule: _Rule, key: tuple[str, ...], t: int, e: Event) -> None:
        last = rule.seen.get(key)
        rule.seen[key] = t
        is_new = last is None or t - last >= rule.new_within  # type: ignore[operator]
        a = rule.state.get(key)
        if (a is not None and a.active) or is_new:
            self._event(i, rule, key, t, True, e)

    # window rules

    def _window_event(
        self, i: int, rule: _Rule, key: tuple[str, ...], t: int, ts: int, e: Event
    ) -> None:
        items = rule.window.get(key)
        if items is None:
            items = rule.window[key] = deque()
        _, _, reader = rule.agg  # type: ignore[misc]
        items.append((ts, reader(e) if reader else None, e))
        self._push(t, _EVAL, i, key)
        # It leaves the window at ts + W (and the prev() window at ts + 2W): evaluate there.
        if ts + rule.width > t:
            self._push(ts + rule.width, _EVAL, i, key)
        if rule.reach > rule.width and ts + rule.reach > t:
            self._push(ts + rule.reach, _EVAL, i, key)

    def _evaluate(self, i: int, rule: _Rule, key: tuple[str, ...], at: int) -> None:
        if rule.evaluated.get(key) == at:
            return
        rule.evaluated[key] = at
        items = rule.window.get(key)
        if items is None:
            items = deque()
        lo = at - rule.width
        while items and items[0][0] <= at - rule.reach:
            items.popleft()  # out-of-order leftovers are skipped by the filters below
        name, q, _ = rule.agg  # type: ignore[misc]
        width_s = rule.width / 1_000_000
        value = _aggregate(name, q, width_s, (x[1] for x in items if x[0] > lo))

        def prev(spec: tuple[str, float | None, Any]) -> float | None:
            pname, pq, reader = spec
            inside = [x[2] for x in items if lo - rule.width < x[0] <= lo]
            return _aggregate(pname, pq, width_s, (reader(e) if reader else None for e in inside))

        threshold = rule.threshold(prev)
        cond = (
            value is not None
            and threshold is not None
            and _OPS[rule.block.window.op](value, threshold)
        )  # type: ignore[union-attr]
        a = rule.state.get(key)
        if a is None:
            a = rule.state[key] = _Alert()
        if cond and not a.active:
            a.active, a.fired, a.t0 = True, False, at
            a.event = items[-1][2] if items else None  # type: ignore[attr-defined]
            if rule.hold:
                self._push(at + rule.hold, _WHOLD, i, key)
            else:
                self._fire(i, rule, key, at, a)
        elif not cond and a.active:
            self._end(rule, key, at, a)
        if not items:
            rule.window.pop(key, None)

    # absence rules

    def _absent_event(self, i: int, rule: _Rule, key: tuple[str, ...], t: int, e: Event) -> None:
        a = rule.state.get(key)
        if a is None:
            a = rule.state[key] = _Alert()
        if a.active:
            self._end(rule, key, t, a)
        a.last_f = t
        a.event = e  # type: ignore[attr-defined]
        self._push(t + rule.absent, _ABSENT, i, key)  # type: ignore[operator]

    # routes, silences, inhibits

    def _route(self, rule: _Rule, key: tuple[str, ...], at: int, a: _Alert) -> None:
        e = getattr(a, "event", None) or {"labels": {}}
        names = [ast.field_name(f) for f in rule.block.by]
        team = rule.block.team.name if rule.block.team else None
        severity = rule.block.severity.name if rule.block.severity else e.get("severity", "medium")
        alert = {
            **e,
            "severity": severity,
            "labels": {**e.get("labels", {}), "rule": rule.block.id.name, "team": team or ""},
        }
        for name, value in zip(names, key, strict=False):
            alert["labels"][name] = value
        notify = [n.name for n in rule.block.notify]
        for route, pred in zip(self.routes, self.route_preds, strict=True):
            if pred(alert):
                team = route.team.name if route.team else team
                severity = route.severity.name if route.severity else severity
                notify += [n.name for n in route.notify if n.name not in notify]
                if not route.is_continue:
                    break
        muted = []
        when = datetime.fromtimestamp(at / 1_000_000, UTC)
        for s, pred in self.silences:
            if not pred(alert):
                continue
            if (s.starts and when < s.starts.value) or (s.ends and when >= s.ends.value):
                continue
            spec = self.during.get(s.id.name)
            if spec is not None:
                local = when.astimezone(ZoneInfo(spec.tz))
                minute = local.hour * 60 + local.minute
                day = local.weekday()
                if spec.start_minute < spec.end_minute:
                    inside = day in spec.days and spec.start_minute <= minute < spec.end_minute
                else:
                    inside = (day in spec.days and minute >= spec.start_minute) or (
                        (day - 1) % 7 in spec.days and minute < spec.end_minute
                    )
                if not inside:
                    continue
            muted.append(s.id.name)
        me = (rule.block.id.name, key)
        for j, (inh, when_pred, while_pred, on) in enumerate(self.inhibits):
            if when_pred(alert):
                others = self.sources[j].get(on(alert), ())
                if any(other != me for other in others):
                    muted.append(inh.id.name)
            if while_pred(alert):
                value = on(alert)
                self.sources[j].setdefault(value, set()).add(me)
                self.source_of.setdefault(me, []).append((j, value))
        self.muted += bool(muted)
