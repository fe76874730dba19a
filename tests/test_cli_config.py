"""The CLI's defaults: CSE_* environment variables, the config file's profiles, their precedence (flag, then
environment, then profile), and shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cse import EncryptionClient
from cse.cli import main
from cse.cli_config import WEAKENING_OPTIONS

pytest.importorskip("cse_rsa")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config file and no CSE_* variable from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("CSE_") and name != "CSE_ALIYUN_KMS_ENDPOINT":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def _write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _stored_with(url: str, key: str) -> bool:
    """Whether ``key`` (and only the key asked) decrypts the object: a wrong key raises."""
    try:
        EncryptionClient(key).get(url)
    except Exception:  # noqa: BLE001 - any refusal means the object is not under this key
        return False
    return True


def test_environment_supplies_key_format_and_context(isolated: Path, key_a: str, key_b: str) -> None:
    src = isolated / "in.txt"
    src.write_bytes(b"from env")
    url = f"file://{isolated}/store/env.txt"
    env = {"CSE_KEY": key_a, "CSE_FORMAT": "cse-v1", "CSE_CONTEXT": "app=billing team=data"}
    put = CliRunner().invoke(main, ["put", str(src), url], env=env)
    assert put.exit_code == 0, put.output
    head = CliRunner().invoke(main, ["head", url, "--json"], env=env)
    assert '"app": "billing"' in head.output and '"team": "data"' in head.output
    cat = CliRunner().invoke(main, ["cat", url], env={"CSE_KEY": key_a})
    assert cat.exit_code == 0 and cat.output == "from env"
    assert _stored_with(url, key_a) and not _stored_with(url, key_b)


def test_precedence_flag_then_env_then_profile(isolated: Path, key_a: str, key_b: str, key_dir: Path) -> None:
    key_c = f"rsa://{key_dir / 'c.pem'}"
    config = _write_config(
        isolated / "xdg" / "cse" / "config.toml", f'[profiles.default]\nkey = "{key_c}"\ncontext = ["p=1"]\n'
    )
    assert config.is_file()
    src = isolated / "in.txt"
    src.write_bytes(b"x")
    runner = CliRunner()
    for name, args, env, expected in [
        ("profile", [], {}, key_c),
        ("env over profile", [], {"CSE_KEY": key_b}, key_b),
        ("flag over env", ["--key", key_a], {"CSE_KEY": key_b}, key_a),
    ]:
        url = f"file://{isolated}/store/{name.replace(' ', '-')}"
        result = runner.invoke(main, ["put", str(src), url, *args], env=env)
        assert result.exit_code == 0, (name, result.output)
        assert _stored_with(url, expected), name
        assert EncryptionClient(expected).head(url).envelope.encryption_context == {"p": "1"}


def test_named_profile_and_its_store_settings(
    isolated: Path, key_a: str, key_b: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OSS_REGION", raising=False)
    config = _write_config(
        isolated / "cse.toml",
        f'[profiles.default]\nkey = "{key_b}"\n\n'
        f'[profiles.archive]\nkey = ["{key_a}"]\nworkers = 2\noss-region = "cn-shanghai"\n',
    )
    src = isolated / "in.txt"
    src.write_bytes(b"archived")
    url = f"file://{isolated}/store/archived"
    result = CliRunner().invoke(main, ["--config", str(config), "--profile", "archive", "put", str(src), url])
    assert result.exit_code == 0, result.output
    assert _stored_with(url, key_a)
    assert os.environ["OSS_REGION"] == "cn-shanghai"
    # CSE_PROFILE and CSE_CONFIG name them too, and the environment's own variable wins over the profile.
    monkeypatch.setenv("OSS_REGION", "cn-beijing")
    out = CliRunner().invoke(main, ["cat", url], env={"CSE_CONFIG": str(config), "CSE_PROFILE": "archive"})
    assert out.exit_code == 0 and out.output == "archived"
    assert os.environ["OSS_REGION"] == "cn-beijing"


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ('[profiles.a]\nkey = "x"\n', ["--profile", "b"], "has no profile 'b' (profiles: a)"),
        ("[profiles.a\n", ["--profile", "a"], "is not valid TOML"),
        ('[profiles.default]\nsecret-key = "x"\n', [], "unknown entries secret-key"),
        ("profiles = 3\n", [], "'profiles' must be a table"),
    ],
)
def test_bad_config_is_a_usage_error_that_says_what_to_do(
    isolated: Path, text: str, args: list[str], message: str
) -> None:
    config = _write_config(isolated / "bad.toml", text)
    result = CliRunner().invoke(main, ["--config", str(config), *args, "ls", "memory://cfg/"])
    assert result.exit_code == 2
    assert message in result.output


def test_a_missing_config_file_named_is_an_error_and_the_default_one_is_not(isolated: Path) -> None:
    missing = CliRunner().invoke(main, ["--config", str(isolated / "nope.toml"), "ls", "memory://cfg/"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert CliRunner().invoke(main, ["ls", "memory://cfg/"]).exit_code == 0
    named = CliRunner().invoke(main, ["--profile", "x", "ls", "memory://cfg/"])
    assert named.exit_code == 2 and "there is no config file" in named.output


def test_help_shows_the_environment_variables() -> None:
    result = CliRunner().invoke(main, ["put", "--help"])
    assert "CSE_KEY" in result.output and "CSE_FORMAT" in result.output and "CSE_CONTEXT" in result.output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0
    assert "_CSE_COMPLETE" in result.output


def test_completion_completes_commands_in_a_real_bash(isolated: Path) -> None:
    """The installed ``cse`` completes ``cse mi`` to ``migrate`` through click's protocol, as bash asks it."""
    cse = shutil.which("cse", path=os.path.dirname(sys.executable))
    if cse is None:
        pytest.skip("the cse script is not installed beside this interpreter")
    env = {**os.environ, "_CSE_COMPLETE": "bash_complete", "COMP_WORDS": "cse mi", "COMP_CWORD": "1"}
    out = subprocess.run([cse], env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "plain,migrate" in out.splitlines()
    script = subprocess.run([cse, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _params(command: click.Command) -> list[tuple[str, click.Parameter]]:
    found = [(command.name or "", p) for p in command.params]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found.extend(_params(sub))
    return found


def test_security_opt_ins_read_no_environment_variable() -> None:
    weakening = [
        (name, p)
        for name, p in _params(main)
        if isinstance(p, click.Option) and p.name and p.opts[0].lstrip("-") in WEAKENING_OPTIONS
    ]
    # Every opt-in is there (on get, cat, cp, head, migrate, rewrap ...), and none has a variable.
    assert {p.opts[0].lstrip("-") for _, p in weakening} == WEAKENING_OPTIONS
    assert [(name, p.opts[0]) for name, p in weakening if p.envvar] == []
    others = [p for _, p in _params(main) if isinstance(p, click.Option) and p.opts[0] == "--key"]
    assert others and all(p.envvar == "CSE_KEY" for p in others)
    help_text = CliRunner().invoke(main, ["get", "--help"]).output
    assert "CSE_ALLOW_LEGACY" not in help_text and "CSE_DELAYED_AUTHENTICATION" not in help_text


@pytest.mark.parametrize("entry", sorted(WEAKENING_OPTIONS))
def test_a_profile_cannot_switch_a_security_check_off(isolated: Path, entry: str) -> None:
    config = _write_config(isolated / "weak.toml", f"[profiles.default]\n{entry} = true\n")
    result = CliRunner().invoke(main, ["--config", str(config), "ls", "memory://cfg/"])
    assert result.exit_code == 2
    assert f"sets {entry}" in result.output and "give them on the command line" in result.output
