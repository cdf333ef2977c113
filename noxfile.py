"""Developer tasks: ``nox -s lint typing tests`` (and docs, e2e, contrib)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


def install(session: nox.Session, *groups: str, extras: str = "all") -> None:
    session.install("--upgrade", "pip>=25.1")
    # The SDK first (its own distribution, src/pyproject.toml), which the host pins.
    args = ["-e", "./src", "-e", f".[{extras}]", "-e", "examples/notes"]
    # The contrib plugins too: the root pyproject's testpaths include plugins-contrib/*/tests.
    for project in sorted(Path("plugins-contrib").glob("*/pyproject.toml")):
        args += ["-e", str(project.parent)]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole suite; service tests need `scripts/services.sh up` (else they skip)."""
    install(session, "tests")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Only the end-to-end tests (a real host with real plugins)."""
    install(session, "tests")
    session.run("python", "-m", "pytest", "tests/e2e", "tests/examples", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("--upgrade", "pip>=25.1")
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict on src/ and tests/."""
    install(session, "typing", "bench")  # benchmarks are type-checked too
    session.run("mypy", "src", "tests", "examples/notes/src", "benchmarks")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with warnings as errors."""
    install(session, "docs")
    session.run("sphinx-build", "-W", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=PYTHON)
def contrib(session: nox.Session) -> None:
    """Test every plugin under plugins-contrib/."""
    install(session, "tests")  # installs every plugins-contrib/ package
    projects = sorted(Path("plugins-contrib").glob("*/pyproject.toml"))
    if not projects:
        session.error("plugins-contrib/ holds no plugin: nothing to test")
    for project in projects:
        session.run("python", "-m", "pytest", str(project.parent / "tests"), *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark (needs `scripts/services.sh up` and its env file sourced)."""
    install(session, "bench")
    session.run("python", "benchmarks/run.py", *session.posargs)
