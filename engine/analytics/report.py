"""The PDF report of a period: KPIs, charts and the tables managers ask for (fpdf2).

    pdf = build_report(db, wh, filters)     # bytes

Page 1: the KPIs, alerts per day by severity, median time to acknowledge and resolve per day,
the noisiest rules. Page 2: SLA breaches by severity, team load, delivery by channel, flapping.
Text uses DejaVu Sans when the system has it (any language); otherwise the PDF core font, with
characters it cannot show replaced by '?'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fpdf import FPDF

from engine.analytics.charts import PALETTE, lines, stacked_bars
from engine.analytics.dashboard import dashboard
from engine.analytics.filters import SEVERITIES, Filters
from engine.analytics.metrics import response_times
from engine.analytics.noise import flapping, noise
from engine.analytics.sla import targets
from engine.analytics.teams import people, team_load
from engine.analytics.warehouse import Warehouse
from engine.store.db import Database

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
MAX_DAYS_CHARTED = 93  # longer periods are charted by week


def duration(seconds: float | None) -> str:
    """12 s, 4.5 min, 2.1 h, 3.2 d; an em dash for nothing."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


class _Report(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.title_text = title
        self.unicode = False
        for folder in FONT_DIRS:
            if (folder / "DejaVuSans.ttf").exists():
                self.add_font("DejaVu", "", str(folder / "DejaVuSans.ttf"))
                self.add_font("DejaVu", "B", str(folder / "DejaVuSans-Bold.ttf"))
                self.unicode = True
                break
        self.family = "DejaVu" if self.unicode else "Helvetica"
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def text_of(self, value: Any) -> str:
        text = "" if value is None else str(value)
        if not self.unicode:
            text = text.replace("—", "-").encode("latin-1", "replace").decode("latin-1")
        return text

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.family, size=7)
        self.set_text_color(140, 140, 140)
        self.cell(0, 4, self.text_of(f"{self.title_text} · page {self.page_no()}"), align="C")

    def heading(self, text: str) -> None:
        self.set_font(self.family, "B", 11)
        self.set_text_color(30, 30, 30)
        self.cell(0, 7, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def kpis(self, items: list[tuple[str, str]]) -> None:
        width = (self.w - 30 - 3 * 3) / 4
        top = self.get_y()
        for i, (label, value) in enumerate(items):
            col, row = i % 4, i // 4
            x, y = 15 + col * (width + 3), top + row * 17
            self.set_fill_color(245, 246, 248)
            self.rect(x, y, width, 15, style="F")
            self.set_xy(x + 2, y + 1.5)
            self.set_font(self.family, size=7)
            self.set_text_color(110, 110, 110)
            self.cell(width - 4, 4, self.text_of(label))
            self.set_xy(x + 2, y + 6)
            self.set_font(self.family, "B", 13)
            self.set_text_color(20, 20, 20)
            self.cell(width - 4, 7, self.text_of(value))
        self.set_y(top + ((len(items) + 3) // 4) * 17 + 2)

    def grid(self, headers: list[str], rows: list[list[Any]], widths: list[float]) -> None:
        self.set_font(self.family, "B", 8)
        self.set_fill_color(235, 237, 240)
        self.set_text_color(30, 30, 30)
        for h, w in zip(headers, widths, strict=True):
            self.cell(w, 6, self.text_of(h), fill=True)
        self.ln(6)
        self.set_font(self.family, size=8)
        if not rows:
            self.set_text_color(120, 120, 120)
            self.cell(sum(widths), 6, "nothing in this period", new_x="LMARGIN", new_y="NEXT")
            return
        for row in rows:
            for value, w in zip(row, widths, strict=True):
                text = self.text_of(value)
                while len(text) > 4 and self.get_string_width(text) > w - 1:
                    text = text[:-2] + "…" if self.unicode else text[:-2]
                self.cell(w, 5, text)
            self.ln(5)
        self.ln(2)


def _labels(series: list[dict[str, Any]], bucket: str) -> list[str]:
    return [
        row["bucket"][5:10] if bucket == "day" else "w " + row["bucket"][5:10] for row in series
    ]


def build_report(
    db: Database,
    wh: Warehouse,
    filters: Filters,
    now: datetime | None = None,
    title: str = "Klaxon report",
) -> bytes:
    """The report of `filters`' period as PDF bytes."""
    now = now or datetime.now(UTC)
    if filters.bucket == "day" and filters.end - filters.start > timedelta(days=MAX_DAYS_CHARTED):
        filters = Filters.of(
            start=filters.start,
            end=filters.end,
            team=filters.team,
            service=filters.service,
            severity=filters.severity,
            source=filters.source,
            rule=filters.rule,
            bucket="week",
        )
    with db.read() as conn:
        goals = targets(conn)
        team_frame, members = people(conn)
    dash = dashboard(wh, filters, goals, now=now)
    mtta = {r["bucket"]: r["median"] for r in response_times(wh, filters, "mtta")["series"]}
    mttr = {r["bucket"]: r["median"] for r in response_times(wh, filters, "mttr")["series"]}
    noisy = noise(wh, filters, limit=10)
    flaps = flapping(wh, filters, limit=10)
    load = team_load(wh, filters, team_frame, members)

    span = f"{filters.start:%Y-%m-%d %H:%M} – {filters.end:%Y-%m-%d %H:%M} UTC"
    pdf = _Report(f"{title}, {span}")
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 16)
    pdf.cell(0, 9, pdf.text_of(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, size=9)
    pdf.set_text_color(90, 90, 90)
    narrowed = ", ".join(
        f"{d}: {', '.join(v)}"
        for d in ("team", "service", "severity", "source", "rule")
        if (v := getattr(filters, d))
    )
    pdf.cell(
        0,
        5,
        pdf.text_of(span + (f" · {narrowed}" if narrowed else "")),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.cell(
        0, 5, pdf.text_of(f"generated {now:%Y-%m-%d %H:%M} UTC"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(3)
    k = dash["kpis"]
    pdf.kpis(
        [
            ("Alerts", f"{k['alerts']:,}"),
            ("Still open", f"{k['open']:,}"),
            ("Auto-resolved, untouched", percent(k["auto_resolved_share"])),
            ("False positives", percent(k["false_positive_share"])),
            ("MTTA (median)", duration(k["mtta"]["median"])),
            ("MTTR (median)", duration(k["mttr"]["median"])),
            ("MTTD (median)", duration(k["mttd"]["median"])),
            ("MTTA p90", duration(k["mtta"]["p90"])),
            ("Ack SLA breached", percent(k["ack_breach_rate"])),
            ("Resolve SLA breached", percent(k["resolve_breach_rate"])),
            ("Notifications", f"{k['notifications']:,}"),
            ("Delivery failures", percent(k["delivery_failure_rate"])),
        ]
    )
    series = dash["series"]
    labels = _labels(series, filters.bucket)
    pdf.heading(f"Alerts per {filters.bucket}, by severity")
    y = pdf.get_y() + 7
    stacked_bars(
        pdf,
        30,
        y,
        pdf.w - 45,
        40,
        labels,
        {
            s: [row.get(s, 0) for row in series]
            for s in reversed(SEVERITIES)
            if any(row.get(s) for row in series)
        },
        PALETTE,
    )
    pdf.set_y(y + 47)
    pdf.heading(f"Median time to acknowledge and to resolve per {filters.bucket} (minutes)")
    y = pdf.get_y() + 7
    buckets = [row["bucket"] for row in series]
    lines(
        pdf,
        30,
        y,
        pdf.w - 45,
        35,
        labels,
        {
            "MTTA": [_minutes(mtta.get(b)) for b in buckets],
            "MTTR": [_minutes(mttr.get(b)) for b in buckets],
        },
    )
    pdf.set_y(y + 42)
    pdf.heading("Noisiest rules")
    pdf.grid(
        ["rule", "alerts", "occurrences", "auto-resolved", "false positives"],
        [
            [
                r["rule"],
                r["alerts"],
                r["occurrences"],
                percent(r["auto_resolved_share"]),
                percent(r["false_positive_share"]),
            ]
            for r in noisy["rules"]
        ],
        [70, 25, 30, 27, 28],
    )
    pdf.add_page()
    pdf.heading("SLA breaches by severity")
    pdf.grid(
        ["severity", "alerts", "ack target", "ack breached", "resolve target", "resolve breached"],
        [
            [
                r["severity"],
                r["alerts"],
                duration(r["ack_target_s"]),
                percent(r["ack_breach_rate"]) if r["ack_target_s"] else "—",
                duration(r["resolve_target_s"]),
                percent(r["resolve_breach_rate"]) if r["resolve_target_s"] else "—",
            ]
            for r in dash["sla"]
        ],
        [30, 22, 30, 30, 34, 34],
    )
    pdf.heading("Team load")
    pdf.grid(
        ["team", "members", "alerts", "per member", "pages", "after hours"],
        [
            [
                t["team"] or "(no team)",
                t["members"],
                t["alerts"],
                t["alerts_per_member"] if t["alerts_per_member"] is not None else "—",
                t["pages"],
                t["after_hours_pages"],
            ]
            for t in load["teams"]
        ],
        [50, 22, 25, 28, 25, 30],
    )
    pdf.heading("Notification delivery by channel")
    pdf.grid(
        ["channel", "notifications", "sent", "failed or dead", "median latency"],
        [
            [
                c["channel"],
                c["notifications"],
                c["by_status"]["sent"],
                c["by_status"]["failed"] + c["by_status"]["dead"],
                duration(c["latency_s"]["median"]),
            ]
            for c in dash["delivery"]
        ],
        [60, 30, 25, 30, 35],
    )
    pdf.heading("Flapping (3 or more fires within an hour)")
    pdf.grid(
        ["rule", "key", "fires", "most in an hour"],
        [[f["rule"], f["key"], f["fires"], f["max_in_window"]] for f in flaps["series"]],
        [45, 85, 20, 30],
    )
    return bytes(pdf.output())


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)
