"""The production image gets the runtime lock only, and that lock is enough to run the app."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
APP_PACKAGES = ("registry", "sites", "api", "reports")

# Tools for testing, linting and locking: none of them belongs in the image.
TEST_AND_TOOLING = {
    "pytest",
    "pytest-django",
    "pytest-xdist",
    "execnet",
    "pluggy",
    "iniconfig",
    "hypothesis",
    "schemathesis",
    "playwright",
    "greenlet",
    "factory-boy",
    "faker",
    "ruff",
    "pip-tools",
    "coverage",
}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path):
    """{distribution name: version} from a pip-compile lock."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def direct_inputs(path):
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.split(r"[\[<>=~!; ]", line, maxsplit=1)[0]))
    return names


def test_runtime_lock_holds_no_test_or_tooling_package():
    runtime = locked(REQUIREMENTS / "runtime.txt")
    assert len(runtime) > 20, "the runtime lock should pin every runtime package"
    assert not (TEST_AND_TOOLING & set(runtime))
    assert not (direct_inputs(REQUIREMENTS / "dev.in") & set(runtime))


def test_development_lock_agrees_with_the_runtime_lock():
    runtime, dev = locked(REQUIREMENTS / "runtime.txt"), locked(REQUIREMENTS / "dev.txt")
    assert direct_inputs(REQUIREMENTS / "dev.in") <= set(dev)
    assert {name: dev[name] for name in set(dev) & set(runtime)} == {
        name: runtime[name] for name in set(dev) & set(runtime)
    }


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs == ["pip install -r requirements/runtime.txt"]
    assert "dev.txt" not in re.sub(r"#[^\n]*", "", dockerfile)


def third_party_imports():
    modules = set()
    for package in APP_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in APP_PACKAGES}


def test_every_module_the_app_imports_comes_from_the_runtime_lock():
    runtime = set(locked(REQUIREMENTS / "runtime.txt"))
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in third_party_imports()
        if not {normalise(d) for d in distributions.get(module, [])} & runtime
    }
    assert not missing
