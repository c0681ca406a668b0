"""docs/api.md is a contract: its examples run, in order, as a fresh program would run them, and
every name the package exports is documented there and importable without loading the rest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import fogvault

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"


def _examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", API_DOC.read_text(), flags=re.S | re.M)


def test_the_examples_run_in_order(tmp_path, cli_env):
    blocks = _examples()
    assert len(blocks) >= 6
    script = "\n".join(f"print('--- example {n}', flush=True)\n{code}"
                       for n, code in enumerate(blocks, 1))
    (tmp_path / "examples.py").write_text(script)
    done = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, env=cli_env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("--- example") == len(blocks)
    assert "refused:" in done.stdout  # the wrong password was refused, as shown


def test_every_exported_name_resolves_and_is_documented():
    text = API_DOC.read_text()
    for name in fogvault.__all__:
        assert getattr(fogvault, name) is not None
        if name != "__version__":
            assert f"`{name}" in text or f"fogvault.{name}" in text, name


def test_importing_the_package_loads_nothing_else(cli_env):
    probe = ("import sys, fogvault; "
             "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'fogvault'))")
    done = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['fogvault']"


def test_an_unknown_name_is_an_attribute_error():
    try:
        fogvault.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("fogvault.NoSuchThing did not raise")
