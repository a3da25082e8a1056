"""A wrong option value stops `c360` at once with argparse's one line naming the option, before
any service is touched, instead of a traceback from deep in the command."""

from __future__ import annotations

import pytest

from customer360.cli import build_parser


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["stream", "--rate", "0"], "--rate"),
        (["stream", "--rate", "-20"], "--rate"),
        (["stream", "--rate", "nan"], "--rate"),
        (["stream", "--rate", "fast"], "--rate"),
        (["up", "--days", "0"], "--days"),
        (["up", "--rate", "-3"], "--rate"),
        (["up", "--rate", "nan"], "--rate"),
        (["up", "--rate", "inf"], "--rate"),
        (["up", "--rate", "fast"], "--rate"),
        (["sql", "--nice", "abc"], "--nice"),
        (["sql", "--nice", "-5"], "--nice"),
        (["serve", "--nice", "1.5"], "--nice"),
        (["up", "--customers", "-1"], "--customers"),
        (["seed", "--customers", "ten"], "--customers"),
        (["stream", "--progress-every", "0"], "--progress-every"),
        (["extract", "--follow", "--interval", "-1"], "--interval"),
        (["extract", "--follow", "--interval", "inf"], "--interval"),
        (["audiences", "publish", "--interval", "-0.5"], "--interval"),
    ],
)
def test_a_value_the_command_cannot_use_is_refused_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    command = " ".join(argv[: 2 if argv[0] == "audiences" else 1])
    assert last.startswith(f"c360 {command}: error: argument {option}: must be "), last
    assert last.endswith(f"not {argv[-1]!r}"), last


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "70000"],
        ["sql", "--port", "0"],
        ["dagster", "--port", "http"],
        ["up", "--ui-port", "-3000"],
    ],
)
def test_a_port_option_takes_the_ports_a_c360_port_variable_takes(argv, capsys):
    # 70000 was an OverflowError traceback from the socket, after the command had started.
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert (
        last == f"c360 {argv[0]}: error: argument {argv[1]}: invalid port_number value: {argv[2]!r}"
    )


def test_the_defaults_and_good_values_still_parse():
    parser = build_parser()
    assert parser.parse_args(["stream"]).rate == 100.0
    assert parser.parse_args(["stream", "--rate", "2.5"]).rate == 2.5
    up = parser.parse_args(["up"])
    assert (up.customers, up.days, up.rate) == (10_000, 365, 20.0)
    assert parser.parse_args(["up", "--rate", "0"]).rate == 0  # no stream, as documented
    assert parser.parse_args(["up", "--rate", "2.5"]).rate == 2.5
    assert parser.parse_args(["sql", "--nice", "idle"]).nice == "idle"
    assert parser.parse_args(["sql", "--nice", "0"]).nice == "0"
    assert parser.parse_args(["serve", "--port", "65535"]).port == 65535
    assert parser.parse_args(["dagster"]).port == 3000
    assert parser.parse_args(["extract", "--follow", "--interval", "0"]).interval == 0
    assert parser.parse_args(["audiences", "publish"]).interval == 1.0
    assert parser.parse_args(["stream", "--progress-every", "0.5"]).progress_every == 0.5


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("up", ["$C360_HOME/run/{stream,serve,sql,audiences}.log", "audience publisher"]),
        ("dagster", ["$C360_HOME/logs/dagster-*.log"]),
        ("run-once", ["C360_SERVING_DB", "C360_WAREHOUSE"]),
    ],
)
def test_a_commands_help_names_the_files_it_writes_and_what_it_starts(command, named, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # help is wrapped to the terminal
    for words in named:
        assert words in text, words
