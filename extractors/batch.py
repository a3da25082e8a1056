"""What one micro-batch of one source did."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """Built by keyword, or with `BatchResult.nothing_landed` for a batch that landed nothing."""

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

    @classmethod
    def nothing_landed(
        cls,
        source: str,
        position: str | None,
        remaining_lag: int | None,
        seconds: float,
        note: str = "",
    ) -> BatchResult:
        """A batch that landed no record: the position stays where it was."""
        return cls(
            source=source,
            batch_id=None,
            records=0,
            quarantined=0,
            bytes=0,
            position_before=position,
            position_after=position,
            remaining_lag=remaining_lag,
            seconds=seconds,
            note=note,
        )

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
