"""The README's commands are the ones CI runs, and its Python examples run."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_ci_runs_the_readme_install_and_test_commands_in_order():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    dev_install = _commands(_blocks(_section("Install"), "bash")[-1])
    test_cmd = _commands(_blocks(_section("Test"), "bash")[0])
    assert test_cmd == ["pytest -q"]
    expected = dev_install + test_cmd
    positions = [ci.index(cmd) for cmd in expected]  # ValueError if a README line is missing from CI
    assert positions == sorted(positions), "CI runs the README's commands in another order"
    assert ci[-1] == "pytest -q"


def test_quick_start_python_runs():
    code = "\n".join(_blocks(_section("Quick start"), "python"))
    assert code
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


def _run_sh_help(recipe: str) -> str:
    return subprocess.run(["bash", str(ROOT / "recipes" / recipe / "run.sh"), "--help"], capture_output=True,
                          text=True, check=True).stdout


def test_recipe_commands_in_the_docs_use_options_that_run_sh_has():
    helps = {r: _run_sh_help(r) for r in ("ljspeech", "synthetic")}
    docs = README + (ROOT / "recipes" / "README.md").read_text()
    lines = [c for b in _blocks(docs, "sh") for c in _commands(b) if "run.sh" in c]
    assert len(lines) >= 5
    for line in lines:
        recipes = [r for r in helps if r in line] or list(helps)
        for option in re.findall(r"(?<!\S)(--[a-z][a-z-]*)", line.split("#")[0]):
            assert any(option in helps[r] for r in recipes), f"{option} is not an option of run.sh: {line}"
