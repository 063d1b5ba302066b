"""`load_environment` on hostile folders: links, pipes, huge files, ambiguous JSON."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from gem_graph.environment import MAX_FILE_BYTES, EnvironmentFormatError, load_environment
from gem_graph.resources import data_dir

RETAIL = data_dir("environments") / "retail"
SECRET = "sk-host-secret-4b1d9e77c0"
FILES = ("environment.json", "schema.sql", "seed.json", "tools.py")


@pytest.fixture
def env(tmp_path: Path) -> Path:
    folder = tmp_path / "env"
    shutil.copytree(RETAIL, folder)
    return folder


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "host_secret.txt"
    secret.write_text(f'{{"{SECRET}": 1}}\n{SECRET}\n')
    return secret


def load_error(folder: Path) -> str:
    with pytest.raises(EnvironmentFormatError) as info:
        load_environment(folder)
    return str(info.value)


def test_the_reference_environment_still_loads(env: Path) -> None:
    assert load_environment(env).name == "retail"


def test_a_symlinked_folder_is_fine(env: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(env, target_is_directory=True)
    assert load_environment(link).name == "retail"


@pytest.mark.parametrize("name", FILES)
def test_a_symlinked_file_is_refused_without_reading_it(
    env: Path, host_secret: Path, name: str
) -> None:
    (env / name).unlink()
    (env / name).symlink_to(host_secret)
    message = load_error(env)
    assert name in message and "symlink" in message
    assert SECRET not in message and str(host_secret) not in message


def test_a_symlink_to_a_copy_of_the_real_file_is_refused_too(env: Path, tmp_path: Path) -> None:
    copy = tmp_path / "schema_copy.sql"
    shutil.copy(env / "schema.sql", copy)
    (env / "schema.sql").unlink()
    (env / "schema.sql").symlink_to(copy)
    assert "schema.sql" in load_error(env)


def test_a_dangling_symlink_is_refused(env: Path, tmp_path: Path) -> None:
    (env / "tools.py").unlink()
    (env / "tools.py").symlink_to(tmp_path / "nowhere.py")
    assert "symlink" in load_error(env)


@pytest.mark.parametrize("name", ["seed.json", "tools.py"])
def test_a_fifo_is_refused_without_blocking(env: Path, name: str) -> None:
    (env / name).unlink()
    os.mkfifo(env / name)
    started = time.monotonic()
    message = load_error(env)
    assert time.monotonic() - started < 2.0
    assert name in message and "regular file" in message


def test_a_directory_in_place_of_a_file_is_refused(env: Path) -> None:
    (env / "schema.sql").unlink()
    (env / "schema.sql").mkdir()
    assert "regular file" in load_error(env)


@pytest.mark.parametrize("name", ["tools.py", "seed.json"])
def test_an_oversized_file_is_refused(env: Path, name: str) -> None:
    with open(env / name, "ab") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    message = load_error(env)
    assert name in message and str(MAX_FILE_BYTES) in message


def test_invalid_utf8_is_refused_without_quoting_it(env: Path) -> None:
    (env / "tools.py").write_bytes(b"def f(db):\n    return '\xff'\n")
    message = load_error(env)
    assert "tools.py" in message and "UTF-8" in message


@pytest.mark.parametrize("name", ["environment.json", "seed.json"])
def test_duplicate_keys_are_refused(env: Path, name: str) -> None:
    text = (env / name).read_text()
    (env / name).write_text('{"dup": 1, "dup": 2, ' + text.lstrip()[1:])
    message = load_error(env)
    assert name in message and "duplicate" in message and "'dup'" in message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e999", '"\\ud800"'])
def test_non_strict_json_values_in_the_seed_are_refused(env: Path, literal: str) -> None:
    text = (env / "seed.json").read_text()
    (env / "seed.json").write_text('{"extra": [{"v": ' + literal + "}], " + text.lstrip()[1:])
    assert "seed.json" in load_error(env)


@pytest.mark.parametrize("value", [2**63, 2**70, -(2**63) - 1])
def test_seed_integers_outside_sqlite_range_name_the_cell(env: Path, value: int) -> None:
    seed = json.loads((env / "seed.json").read_text())
    table = next(iter(seed))
    column = next(iter(seed[table][0]))
    seed[table][0][column] = value
    (env / "seed.json").write_text(json.dumps(seed))
    message = load_error(env)
    assert table in message and column in message and "[0]" in message
    assert "64-bit" in message


def test_seed_integers_at_the_sqlite_limits_are_fine(env: Path) -> None:
    seed = json.loads((env / "seed.json").read_text())
    table = next(iter(seed))
    seed[table][0]["__probe__"] = 2**63 - 1
    seed[table].append({"__probe__": -(2**63)})
    (env / "seed.json").write_text(json.dumps(seed))
    # Loading validates shapes and ranges only; unknown columns fail later, at build time.
    assert load_environment(env).seed[table][-1] == {"__probe__": -(2**63)}
