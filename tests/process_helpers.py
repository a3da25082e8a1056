"""Finding the processes a command under test started, to check that stopping it stopped them."""

from __future__ import annotations

from pathlib import Path


def processes_with_home(home: Path) -> set[int]:
    """Live (not zombie) processes with C360_HOME=`home` in their environment: every process a
    c360 command starts for that home gets it."""
    marker = f"C360_HOME={home}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.add(int(entry.name))
    return found
