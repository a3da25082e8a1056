"""`c360 services logs` prints the end of a log, and says where it looked when there is none."""

from __future__ import annotations

from customer360.cli import build_parser
from customer360.config import Settings


def test_logs_prints_the_last_lines(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mongo.log").write_text("".join(f"line {i}\n" for i in range(5)))
    args = build_parser().parse_args(["services", "logs", "mongo", "-n", "2"])
    assert args.func(args, Settings(home=tmp_path)) == 0
    assert capsys.readouterr().out == "line 3\nline 4\n"


def test_logs_of_a_service_never_started_here_say_where_they_were_looked_for(tmp_path, capsys):
    # It printed an empty line and exited 0, as if the log were empty.
    args = build_parser().parse_args(["services", "logs", "kafka"])
    assert args.func(args, Settings(home=tmp_path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"c360 services logs: no kafka log at {tmp_path}/run/kafka.log: `c360 services up` "
        "with this C360_HOME writes it\n"
    )
