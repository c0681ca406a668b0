"""Keys that take a list of strings: one string is a list of one (as docs/scheduling.md says);
an empty string, an empty or non-string entry, and a marker that is not a file name are refused
with a message that says which."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fogvault.jobs.config import ConfigError, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"
BASE = """\
[repositories.local]
targets = ["/srv/repo"]
password_file = "/etc/pw"

[jobs.home]
repository = "local"
paths = ["/data"]
"""


def _problem(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "config.toml")
    assert len(err.value.problems) == 1, [str(p) for p in err.value.problems]
    return str(err.value.problems[0])


@pytest.mark.parametrize(("value", "message"), [
    ('""', "expected a list of non-empty strings, got an empty string"),
    ('[""]', "expected a list of non-empty strings, got a list holding an empty string"),
    ('[".nobackup", 1]', "expected a list of non-empty strings, got a list holding number 1"),
    ('["a/.nobackup"]', "'a/.nobackup' is not a file name (hint: give the name of a file in "
                        "the folder, such as '.nobackup')"),
    ('"/"', "'/' is not a file name"),
    ('[".."]', "'..' is not a file name"),
])
def test_exclude_if_present_takes_file_names(tmp_path, value, message):
    problem = _problem(BASE + f"exclude_if_present = {value}\n", tmp_path)
    assert problem.startswith(f"{tmp_path}/config.toml:8: jobs.home.exclude_if_present: {message}")


def test_a_list_of_numbers_names_what_it_holds(tmp_path):
    problem = _problem(BASE.replace('paths = ["/data"]', "paths = [1, 2]"), tmp_path)
    assert problem.endswith("jobs.home.paths: expected a list of non-empty strings, got a list "
                            "holding number 1")


def test_one_string_is_a_list_of_one(tmp_path):
    text = (BASE.replace('targets = ["/srv/repo"]', 'targets = "/srv/repo"')
            + 'exclude = "*.tmp"\nexclude_if_present = ".nobackup"\ntags = "nightly"\n'
            + '[jobs.home.retention]\nkeep_last = 1\nkeep_tags = "keep"\n')
    cfg = parse_config(text, tmp_path / "config.toml")
    job = cfg.jobs["home"]
    assert cfg.repositories["local"].targets == ["/srv/repo"]
    assert (job.exclude, job.exclude_if_present, job.tags) == (["*.tmp"], [".nobackup"],
                                                               ["nightly"])
    assert job.retention is not None and job.retention.keep_tags == ("keep",)


def test_the_docs_say_which_keys_take_one_string(tmp_path):
    """Every key above is documented as taking a list or one string."""
    docs = DOCS.read_text()
    for key in ("targets", "paths", "exclude", "exclude_if_present", "tags", "keep_tags"):
        row = re.search(rf"^\| `{key}` \|([^|]*)\|", docs, re.MULTILINE)
        assert row is not None, key
        assert "or one string" in row.group(1) or "string or list" in row.group(1), row.group(0)
