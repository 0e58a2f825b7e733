"""The settings table: defaults, environment overrides, Streamlit's file, the README and the readers of it."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from store import settings
from store.errors import StoreError
from store.home import Home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import metric_rows

ROOT = Path(__file__).resolve().parents[2]
STREAMLIT_NAMES = ("server.address", "server.port", "server.maxUploadSize", "server.enableXsrfProtection")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def test_defaults_without_environment() -> None:
    expected = {"MSMV_HOME": "data", "MSMV_STORE_MEMORY": "4GB", "MSMV_READER_MEMORY": "2GB",
                "MSMV_QUERY_TIMEOUT_S": 30.0, "MSMV_KEEP_SNAPSHOTS": 3, "MSMV_PUBLISH_INTERVAL_S": 2.0,
                "MSMV_ENGINE_WORKERS": 1, "MSMV_ENGINE_THREADS": 0, "MSMV_MAX_ATTEMPTS": 3,
                "MSMV_ALLOWED_USERS": "", "MSMV_ALLOW_UNAUTHENTICATED_REMOTE": False, "MSMV_COHORT_VISIT": 0,
                "MSMV_SOURCE_PREFERENCE": "engine,label-import,metrics-import,simulated",
                "server.address": "127.0.0.1", "server.port": 8501, "server.maxUploadSize": 200,
                "server.enableXsrfProtection": True}  # fmt: skip
    assert {s.name: settings.get(s.name, env={}) for s in settings.SETTINGS} == expected
    assert type(settings.get("MSMV_KEEP_SNAPSHOTS", env={})) is int
    assert type(settings.get("MSMV_QUERY_TIMEOUT_S", env={})) is float


def test_environment_overrides_are_parsed_as_the_settings_type() -> None:
    env = {"MSMV_KEEP_SNAPSHOTS": " 5 ", "MSMV_QUERY_TIMEOUT_S": "0.5", "MSMV_STORE_MEMORY": "16GB",
           "STREAMLIT_SERVER_PORT": "9000", "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "off",
           "MSMV_HOME": ""}  # fmt: skip
    assert settings.get("MSMV_KEEP_SNAPSHOTS", env=env) == 5
    assert settings.get("MSMV_QUERY_TIMEOUT_S", env=env) == 0.5
    assert settings.get("MSMV_STORE_MEMORY", env=env) == "16GB"
    assert settings.get("server.port", env=env) == 9000
    assert settings.get("server.enableXsrfProtection", env=env) is False
    assert settings.get("MSMV_HOME", env=env) == "data"  # an empty variable counts as unset, as in the shell


def test_a_list_setting_takes_known_words_once_each() -> None:
    name = "MSMV_SOURCE_PREFERENCE"
    assert settings.get(name, env={name: " simulated , engine"}) == "simulated,engine"
    with pytest.raises(settings.SettingError, match=r"MSMV_SOURCE_PREFERENCE = 'engine,amra': expected a "
                       r"comma-separated list of engine, label-import, metrics-import, simulated; unknown: amra"):
        settings.get(name, env={name: "engine,amra"})
    with pytest.raises(settings.SettingError, match=r"engine given more than once"):
        settings.get(name, env={name: "engine,simulated,engine"})
    with pytest.raises(settings.SettingError, match=r"expected a comma-separated list"):
        settings.get(name, env={name: " , "})


def test_bad_values_and_names_are_refused_with_the_variable_named() -> None:
    with pytest.raises(settings.SettingError, match=r"MSMV_KEEP_SNAPSHOTS = 'three': expected an integer"):
        settings.get("MSMV_KEEP_SNAPSHOTS", env={"MSMV_KEEP_SNAPSHOTS": "three"})
    with pytest.raises(settings.SettingError, match=r"MSMV_KEEP_SNAPSHOTS = '0': expected at least 1"):
        settings.get("MSMV_KEEP_SNAPSHOTS", env={"MSMV_KEEP_SNAPSHOTS": "0"})
    with pytest.raises(settings.SettingError, match=r"MSMV_ENGINE_WORKERS = '1.5': expected an integer"):
        settings.get("MSMV_ENGINE_WORKERS", env={"MSMV_ENGINE_WORKERS": "1.5"})
    with pytest.raises(settings.SettingError, match=r"STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION = 'maybe': "
                                                    r"expected true or false"):
        settings.get("server.enableXsrfProtection", env={"STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "maybe"})
    with pytest.raises(settings.SettingError, match=r"unknown setting 'MSMV_STORE_MEM'; known: MSMV_HOME, "):
        settings.get("MSMV_STORE_MEM")
    assert issubclass(settings.SettingError, StoreError) and issubclass(settings.SettingError, ValueError)


def test_streamlit_settings_come_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\naddress = "0.0.0.0"\nport = "eighty"\n')
    monkeypatch.setattr(settings, "STREAMLIT_CONFIG", config)
    assert settings.get("server.address", env={}) == "0.0.0.0"
    with pytest.raises(settings.SettingError, match=r"config.toml \[server\] port = 'eighty': expected an integer"):
        settings.get("server.port", env={})
    with pytest.raises(settings.SettingError, match=r"config.toml has no maxUploadSize in \[server\]"):
        settings.get("server.maxUploadSize", env={})
    monkeypatch.setattr(settings, "STREAMLIT_CONFIG", tmp_path / "absent.toml")
    with pytest.raises(settings.SettingError, match=r"absent.toml is missing"):
        settings.get("server.address", env={})


def test_streamlit_reads_the_same_values_and_variables(tmp_path: Path) -> None:
    """Streamlit's own config loader, run from the repository root as ``streamlit run`` is, agrees."""
    code = ("import json, sys\nfrom streamlit import config\nopts = config.get_config_options()\n"
            "print(json.dumps({k: [config.get_option(k), opts[k].env_var] for k in sys.argv[1:]}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HOME"] = str(tmp_path)  # no ~/.streamlit/config.toml of the machine's user
    out = subprocess.run([sys.executable, "-c", code, *STREAMLIT_NAMES], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {n: [settings.get(n, env={}), settings.setting(n).env] for n in STREAMLIT_NAMES}
    assert {s.name for s in settings.SETTINGS if s.streamlit} == set(STREAMLIT_NAMES)


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- settings:begin[^\n]*-->\n(.*?)<!-- settings:end -->", readme, re.DOTALL)
    assert m, "README.md has no settings section between the settings:begin/end markers"
    assert m[1] == settings.markdown(), "README's settings table is stale: paste `msmv settings --markdown`"
    assert "| `MSMV_STORE_MEMORY` | `4GB` |" in m[1]
    assert "| `server.maxUploadSize` in `.streamlit/config.toml` (or `STREAMLIT_SERVER_MAX_UPLOAD_SIZE`) | `200` |" in m[1]
    for s in settings.SETTINGS:
        assert re.search(rf"^\| `{re.escape(s.name)}`.*\| `{re.escape(settings.show(settings.default(s.name)))}` \|",
                         m[1], re.MULTILINE), s.name


def test_every_msmv_variable_in_the_repository_is_declared() -> None:
    declared = {s.name for s in settings.SETTINGS}
    found: dict[str, str] = {}
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for name in re.findall(r"\bMSMV_[A-Z][A-Z0-9_]*", text):
            found.setdefault(name, str(path.relative_to(ROOT)))
    assert {n: p for n, p in found.items() if n not in declared} == {}
    assert "MSMV_HOME" in found and "MSMV_STORE_MEMORY" in found


# Saving and restoring the variable `msmv --home` sets for one command is not reading a setting.
ENV_READ_ALLOWED = {"store/settings.py", "engine/cli/__init__.py"}


def _env_reads(tree: ast.AST) -> list[int]:
    """Lines that read ``os.environ.get("MSMV_...")``, ``os.getenv("MSMV_...")`` or ``os.environ["MSMV_..."]``."""
    lines = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant) and str(key.value).startswith("MSMV_"):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_module_reads_msmv_variables() -> None:
    planted = ast.parse('import os\na = os.environ.get("MSMV_X")\nb = os.environ["MSMV_Y"]\n'
                        'os.environ["MSMV_Z"] = "1"\nc = os.getenv("HOME")\n')
    assert _env_reads(planted) == [2, 3]
    readers = {}
    for path in tracked_files():
        rel = str(path.relative_to(ROOT))
        if path.suffix == ".py" and not rel.startswith("tests/") and rel not in ENV_READ_ALLOWED:
            if lines := _env_reads(ast.parse(path.read_text(), rel)):
                readers[rel] = lines
    assert readers == {}


def test_the_store_follows_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSMV_KEEP_SNAPSHOTS", "1")
    monkeypatch.setenv("MSMV_STORE_MEMORY", "1GiB")
    monkeypatch.setenv("MSMV_READER_MEMORY", "512MiB")
    monkeypatch.setenv("MSMV_QUERY_TIMEOUT_S", "7.5")
    monkeypatch.setenv("MSMV_HOME", str(tmp_path / "h"))
    home = Home((tmp_path / "h").resolve())
    with Writer() as w:
        assert w.home == home
        assert w.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
        for eid in (1, 2, 3):
            w.commit_subject(eid, metric_rows(eid), [], {"kind": "test"})
            w.publish(force=True)
        last = w.version
    assert sorted(p.name for p in home.snapshots.glob("snapshot-*")) == [f"snapshot-{last}.duckdb"]
    with Reader() as r:
        assert r.timeout_s == 7.5
        assert r.query("SELECT current_setting('memory_limit') AS m")["m"].iloc[0] == "512.0 MiB"
