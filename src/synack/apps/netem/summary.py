"""What a `synack netem` run did, per direction: as text for people and JSON for scripts.

The words are tc's and tcpdump's (passed, dropped, duplicated, reordered,
corrupted, delayed); every count is of copies, so a duplicated datagram that
gets through counts twice under "passed".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from synack.apps.netem.impair import Impairment, LaneStats


@dataclass(slots=True)
class LaneReport:
    name: str  # "up" or "down"
    path: str  # "127.0.0.1:9000 -> 127.0.0.1:7007", "a 198.18.0.1 -> b 198.18.1.1"
    impairment: Impairment
    stats: LaneStats


@dataclass(slots=True)
class Summary:
    mode: str  # "udp" or "tun"
    seed: int
    elapsed: float
    lanes: list[LaneReport]
    notes: dict[str, Any] = field(default_factory=dict)

    def lane(self, name: str) -> LaneStats:
        for report in self.lanes:
            if report.name == name:
                return report.stats
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "elapsed": round(self.elapsed, 6),
            "directions": {
                r.name: {
                    "path": r.path,
                    "impairment": r.impairment.describe(),
                    "settings": asdict(r.impairment),
                    **r.stats.as_dict(),
                }
                for r in self.lanes
            },
            **self.notes,
        }

    def json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=False)

    def text(self) -> str:
        lines = [f"synack netem: stopped after {self.elapsed:.1f}s (seed {self.seed})"]
        for r in self.lanes:
            s = r.stats
            lines.append(f"  {r.name:<4} {r.path}: {r.impairment.describe()}")
            line = (
                f"       {s.received} received, {s.passed} passed, {s.dropped} dropped "
                f"({s.lost} loss, {s.queue_dropped} queue"
            )
            if s.overflow:
                line += f", {s.overflow} overflow"
            line += (
                f"), {s.duplicated} duplicated, {s.reordered} reordered, "
                f"{s.corrupted} corrupted, {s.delayed} delayed"
            )
            if s.delayed:
                line += f" (mean {s.mean_delay * 1e3:.1f}ms, max {s.delay_max * 1e3:.1f}ms)"
            if s.errors:
                line += f", {s.errors} not deliverable"
            if s.unsent:
                line += f", {s.unsent} still held at stop"
            lines.append(line)
        for key, value in self.notes.items():
            lines.append(f"  {key.replace('_', ' ')}: {value}")
        return "\n".join(lines)
