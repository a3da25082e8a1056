"""What one micro-batch of one source did."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BatchResult:
    source: str
    batch_id: int | None  # None when nothing was landed
    records: int
    quarantined: int
    bytes: int
    position_before: str | None
    position_after: str | None
    remaining_lag: int | None  # records known to be waiting after this batch (None: unknown)
    seconds: float
    note: str = ""

    @property
    def landed_anything(self) -> bool:
        return self.batch_id is not None

    def summary_line(self) -> str:
        lag = "?" if self.remaining_lag is None else str(self.remaining_lag)
        batch = "-" if self.batch_id is None else str(self.batch_id)
        line = (
            f"{self.source:<17} batch {batch:>6}  landed {self.records:>7}  "
            f"quarantined {self.quarantined:>5}  {self.bytes / 1024:>9.1f} KiB  "
            f"lag {lag:>7}  {self.seconds * 1000:>7.1f} ms"
        )
        return f"{line}  {self.note}" if self.note else line

    def as_dict(self) -> dict:
        return asdict(self)
