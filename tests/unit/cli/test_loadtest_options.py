"""`socialpipe loadtest --transport`: which emulator or broker options a run accepts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.loadtest import (
    BrokerChoice,
    EmulatorChoice,
    OptionMismatch,
    TransportChoice,
    bus_choices,
)
from cli.main import app


def test_each_transport_gets_its_own_default_bus() -> None:
    assert bus_choices(TransportChoice.sqs, None, None) == (
        EmulatorChoice.fauxqs,
        BrokerChoice.tansu,
    )
    assert bus_choices(TransportChoice.kafka, None, BrokerChoice.none)[1] == BrokerChoice.none
    assert bus_choices(TransportChoice.sqs, EmulatorChoice.moto, None)[0] == EmulatorChoice.moto


def test_an_option_of_the_other_transport_is_refused() -> None:
    with pytest.raises(OptionMismatch, match="--emulator is for --transport sqs"):
        bus_choices(TransportChoice.kafka, EmulatorChoice.moto, None)
    with pytest.raises(OptionMismatch, match="--broker is for --transport kafka"):
        bus_choices(TransportChoice.sqs, None, BrokerChoice.tansu)


def test_the_command_refuses_a_mismatch_as_a_usage_error_before_starting_anything() -> None:
    # WHEN an SQS run is given a Kafka broker option
    result = CliRunner().invoke(app, ["loadtest", "--transport", "sqs", "--broker", "none"])
    # THEN it exits 2 with one sentence
    assert result.exit_code == 2
    assert "socialpipe: --broker is for --transport kafka" in result.output


def test_help_explains_the_transport_option() -> None:
    result = CliRunner().invoke(app, ["loadtest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--transport" in result.output and "kafka" in result.output
    assert "EVENT_TRANSPORT" in result.output
