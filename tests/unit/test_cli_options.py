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
        (["up", "--customers", "-1"], "--customers"),
        (["seed", "--customers", "ten"], "--customers"),
    ],
)
def test_a_value_the_command_cannot_use_is_refused_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"c360 {argv[0]}: error: argument {option}: must be "), last
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
    assert parser.parse_args(["serve", "--port", "65535"]).port == 65535
    assert parser.parse_args(["dagster"]).port == 3000
