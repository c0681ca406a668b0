"""Target settings and connection failures through the real CLI: one line on stderr that says
what is wrong, and the documented exit code (2 for a bad setting), never "no repository"."""

from __future__ import annotations

import pytest
from outputs import one_error_line

from fogvault.errors import UsageError
from fogvault.targets import TargetPolicy

CLOSED = "sftp://u@127.0.0.1:9/x"  # the discard port: nothing listens


@pytest.mark.parametrize("command", [["snapshots"], ["init", "--kdf", "interactive"]])
def test_an_sftp_key_file_that_cannot_be_read_is_named_not_a_missing_repository(
        fogvault, tmp_path, command) -> None:
    missing = tmp_path / "no-such-key"
    done = fogvault("-r", CLOSED, *command, env={"FOGVAULT_SFTP_KEY": str(missing)})
    assert one_error_line(done) == (f"error: cannot read FOGVAULT_SFTP_KEY {missing}: No such file "
                                    "or directory")
    assert done.returncode == 2


def test_an_sftp_url_with_a_bad_port_is_a_usage_error(fogvault) -> None:
    done = fogvault("-r", "sftp://u@host:99999/x", "snapshots")
    assert one_error_line(done) == ("error: bad port in 'sftp://u@host:99999/x': use a number "
                                    "from 1 to 65535")
    assert done.returncode == 2


@pytest.mark.parametrize("var", ["FOGVAULT_RETRY_DELAY", "FOGVAULT_RETRY_MAX_DELAY"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "1e999", "-1", "86400"])
def test_retry_delays_must_be_finite_and_sensible(fogvault, var, value) -> None:
    done = fogvault("-r", CLOSED, "snapshots", env={var: value})
    assert one_error_line(done) == (f"error: {var}={value!r}: use a number of seconds from 0 to "
                                    "3600")
    assert done.returncode == 2


def test_the_policy_refuses_the_same_delays_from_a_program() -> None:
    for value in (float("nan"), float("inf"), 1e300, -0.5):
        with pytest.raises(UsageError, match="retry delays must be from 0 to 3600 seconds"):
            TargetPolicy(retry_base_delay=value)
        with pytest.raises(UsageError, match="retry delays must be from 0 to 3600 seconds"):
            TargetPolicy(retry_max_delay=value)
    policy = TargetPolicy.from_env({"FOGVAULT_RETRY_DELAY": "0", "FOGVAULT_RETRY_MAX_DELAY":
                                    "3600"})  # fmt: skip
    assert (policy.retry_base_delay, policy.retry_max_delay) == (0.0, 3600.0)


def test_a_refused_connection_is_one_sentence_and_not_retried(fogvault) -> None:
    done = fogvault("-r", CLOSED, "snapshots")
    assert one_error_line(done) == ("error: sftp://u@127.0.0.1:9/x config: connection refused by "
                                    "127.0.0.1 port 9 (is the SSH server running?)")
    assert done.returncode == 1


def test_an_unknown_host_key_says_how_to_trust_it(fogvault, sftp_url, sftp_env,
                                                  tmp_path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = fogvault("-r", sftp_url, "snapshots", env={
        "FOGVAULT_SFTP_KEY": sftp_env["FOGVAULT_SFTP_KEY"],
        "FOGVAULT_SFTP_KNOWN_HOSTS": str(empty)})
    line = one_error_line(done)
    assert line.startswith(f"error: {sftp_url} config: the host key of 127.0.0.1 port "), line
    assert f"'ssh-keyscan -p {sftp_env['SFTP_PORT']} 127.0.0.1 >> ~/.ssh/known_hosts'" in line
    assert "FOGVAULT_SFTP_KNOWN_HOSTS" in line and done.returncode == 1
