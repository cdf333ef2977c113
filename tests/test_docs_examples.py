"""Every code block in ``docs/**/*.md`` and ``README.md`` runs, so the docs cannot drift from the code.

Blocks are run page by page, in document order, in a fresh temporary directory (the page's
"project"), with no ``PLEXICA_*`` variable from the outer environment, so the embedded defaults
apply. By the fence's info string:

- ``python``: executed; the blocks of a page share one namespace and one event loop, and a block
  may ``await`` at top level. It fails on any exception (write ``assert`` to check a value).
- ``console``: ``$ command`` lines run; the lines after one, up to the next ``$``, are its
  expected output (compared like doctest, ``...`` matches anything, whitespace normalised). Every
  command must exit 0, unless its output ends with a line ``(exit N)``: then it must exit ``N``.
- ``bash`` / ``sh`` / ``shell``: every line is a command (``# comments`` dropped) that must exit 0.
- ``toml``: parsed; unless it is a ``pyproject.toml`` fragment (``[project...]``, ``[tool.*]``,
  ``[build-system]``, ``[dependency-groups]``) it must also load with :func:`plexica.load_settings`,
  which rejects unknown and ill-typed keys.
- ``json``: parsed.
- anything else (``yaml``, ``http``, ``text``, no info string, MyST directives): shown, not run.

Commands the test can run: ``plexica ...`` (also ``.venv/bin/plexica``), in process with the
page's directory as the working directory; ``pytest`` / ``python -m pytest`` (the ``.venv``'s, in a
subprocess); ``cd DIR``; and ``pip install -e DIR`` (which the test stands in for by putting
``DIR/src`` on ``sys.path`` and ``PYTHONPATH``, rather than installing into the project's venv).
Any other command fails the test unless its block is marked.

Markers: HTML comments on the lines just before a fence (invisible once rendered):

- ``<!-- not-executed: REASON -->``: the block is shown only (a Kong config, a Dockerfile, a
  command needing a network or another machine). The reason is required.
- ``<!-- file: PATH -->``: the block is the content of ``PATH`` (relative to the page's
  directory): it is written there, then checked as its language says (a ``python`` file is
  compiled, not executed; a ``toml`` settings file is loaded).
- ``<!-- requires-services: REASON -->``: the block needs the real services (PostgreSQL, Redis,
  Kafka, S3, Keycloak); it runs only when ``PLEXICA_REQUIRE_SERVICES=1`` and is skipped otherwise.
"""

from __future__ import annotations

import ast
import doctest
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
import pytest
from click.testing import CliRunner

from plexica.cli.main import main as plexica_main
from plexica.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SHOWN_ONLY_LANGUAGES = frozenset({"yaml", "yml", "http", "text", "", "dockerfile", "ini", "nginx", "diff", "mermaid"})
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
RUNNABLE_LANGUAGES = frozenset({"python", "console", "toml", "json"}) | SHELL_LANGUAGES
PYPROJECT_TABLE = re.compile(r"^\s*\[+\s*(project|tool|build-system|dependency-groups)\b", re.MULTILINE)
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-executed|file|requires-services)\s*:\s*(?P<value>.*?)\s*-->\s*$")
EXIT_LINE = re.compile(r"^\(exit (?P<code>\d+)\)\Z", re.MULTILINE)
OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@attrs.frozen
class Block:
    """One fenced block: where it is, its language, its text and the marker before it."""

    page: Path
    line: int
    language: str
    text: str
    marker: str | None = None
    marker_value: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.language or 'no info string'})"


class DocBlockError(AssertionError):
    """A block failed: the message names the page, line and what went wrong."""


def parse_blocks(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker comment just before each."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            same_fence = closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence)
            if same_fence and closing and not closing["info"].strip():
                break
            body.append(lines[end])
            end += 1
        marker, value = None, ""
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and (found := MARKER.match(lines[before])):
            marker, value = found["kind"], found["value"]
        language = info.split()[0].lower() if info else ""
        blocks.append(Block(page, index + 1, language, "\n".join(body) + "\n", marker, value))
        index = end + 1
    return blocks


def doc_pages() -> list[Path]:
    pages = sorted(path for path in (ROOT / "docs").rglob("*.md") if "_build" not in path.parts)
    return [*pages, ROOT / "README.md"]


class PageRun:
    """The state one page's blocks share: a directory, a Python namespace, an import path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cwd = directory
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.import_paths: list[str] = []
        self.environ = {name: value for name, value in os.environ.items() if not name.startswith("PLEXICA_")}

    # -- python ---------------------------------------------------------------------------------
    async def python(self, block: Block) -> None:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            code = compile(block.text, block.where, "exec", flags=flags, dont_inherit=True)
        except SyntaxError as exc:
            raise DocBlockError(f"{block.where}: does not compile: {exc}") from exc
        try:
            with self._in_cwd():
                result = eval(code, self.namespace)  # noqa: S307 - the docs' own examples
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            raise DocBlockError(f"{block.where}: raised {type(exc).__name__}: {exc}") from exc

    # -- shell ----------------------------------------------------------------------------------
    def console(self, block: Block) -> None:
        commands: list[tuple[str, list[str]]] = []
        for raw in block.text.splitlines():
            if raw.startswith("$ "):
                commands.append((raw[2:], []))
            elif commands:
                commands[-1][1].append(raw)
            elif raw.strip():
                raise DocBlockError(f"{block.where}: output {raw!r} before any '$ ' command")
        if not commands:
            raise DocBlockError(f"{block.where}: a console block needs '$ ' command lines")
        for command, expected in commands:
            self._check(block, command, "\n".join(expected).strip("\n"))

    def shell(self, block: Block) -> None:
        for raw in block.text.splitlines():
            if raw.strip() and not raw.lstrip().startswith("#"):
                self._check(block, raw, "")

    def _check(self, block: Block, command: str, expected: str) -> None:
        code, output = self._run(block, command)
        status = EXIT_LINE.search(expected)
        wanted = int(status["code"]) if status else 0
        expected = EXIT_LINE.sub("", expected).rstrip("\n")
        if code != wanted:
            raise DocBlockError(f"{block.where}: `{command}` exited {code}, not {wanted}:\n{output}")
        if expected:
            checker = doctest.OutputChecker()
            if not checker.check_output(expected + "\n", output, OUTPUT_FLAGS):
                raise DocBlockError(
                    f"{block.where}: `{command}` printed (exit {code}):\n{output}\nthe page shows:\n{expected}"
                )

    def _run(self, block: Block, command: str) -> tuple[int, str]:
        try:
            argv = shlex.split(command, comments=True)
        except ValueError as exc:
            raise DocBlockError(f"{block.where}: cannot split `{command}`: {exc}") from exc
        if any(token in ("&&", "||", "|", ";", ">", "<") for token in argv):
            raise DocBlockError(f"{block.where}: `{command}` is a pipeline; write one command per line or mark it")
        program = argv[0] if argv else ""
        if program == "cd" and len(argv) == 2:
            target = (self.cwd / argv[1]).resolve()
            if not target.is_dir():
                return 1, f"cd: {argv[1]}: no such directory\n"
            self.cwd = target
            return 0, ""
        if program in ("plexica", ".venv/bin/plexica"):
            return self._plexica(argv[1:])
        if argv[:3] == ["pip", "install", "-e"] and len(argv) >= 4:
            source = (self.cwd / argv[3]).resolve()
            path = source / "src" if (source / "src").is_dir() else source
            self.import_paths.insert(0, str(path))
            return (0, "") if (source / "pyproject.toml").is_file() else (1, f"{source} has no pyproject.toml\n")
        if program == "pytest" or argv[:3] == ["python", "-m", "pytest"]:
            args = argv[1:] if program == "pytest" else argv[3:]
            return self._subprocess([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args])
        raise DocBlockError(
            f"{block.where}: the test cannot run `{command}`; "
            "mark the block with <!-- not-executed: REASON --> if it is only shown"
        )

    def _plexica(self, args: list[str]) -> tuple[int, str]:
        runner = CliRunner()
        env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("PLEXICA_")}
        env["COLUMNS"] = "100"
        code = 0
        with self._in_cwd(), runner.isolation(env=env) as streams:
            try:
                plexica_main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            output = streams[-1].getvalue().decode()  # stdout and stderr, interleaved
        return code, output

    def _subprocess(self, argv: list[str]) -> tuple[int, str]:
        environ = dict(self.environ)
        environ["PYTHONPATH"] = os.pathsep.join([*self.import_paths, environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '')}"
        done = subprocess.run(argv, cwd=self.cwd, env=environ, capture_output=True, text=True, timeout=120, check=False)
        return done.returncode, done.stdout + done.stderr

    # -- data -----------------------------------------------------------------------------------
    def toml(self, block: Block, path: Path | None) -> None:
        try:
            tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as exc:
            raise DocBlockError(f"{block.where}: not TOML: {exc}") from exc
        if PYPROJECT_TABLE.search(block.text):
            return
        target = path or self.directory / f".docs-block-{block.line}.toml"
        if path is None:
            target.write_text(block.text, encoding="utf-8")
        try:
            load_settings(target, environ={})
        except Exception as exc:
            raise DocBlockError(f"{block.where}: not valid settings: {exc}") from exc

    def json(self, block: Block) -> None:
        try:
            json.loads(block.text)
        except json.JSONDecodeError as exc:
            raise DocBlockError(f"{block.where}: not JSON: {exc}") from exc

    def write_file(self, block: Block) -> Path:
        target = (self.directory / block.marker_value).resolve()
        if not target.is_relative_to(self.directory):
            raise DocBlockError(f"{block.where}: file {block.marker_value!r} is outside the page's directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
        return target

    def _in_cwd(self) -> _Chdir:
        return _Chdir(self.cwd, self.import_paths)


class _Chdir:
    """Enter the page's working directory with its import paths; restore both after."""

    def __init__(self, cwd: Path, import_paths: list[str]) -> None:
        self.cwd, self.import_paths = cwd, import_paths

    def __enter__(self) -> None:
        self.previous, self.previous_path = Path.cwd(), list(sys.path)
        os.chdir(self.cwd)
        sys.path[:0] = self.import_paths

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.previous)
        sys.path[:] = self.previous_path


async def run_page(blocks: list[Block], directory: Path) -> list[str]:
    """Run a page's blocks in order; return the skipped ones' descriptions."""
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    run = PageRun(directory)
    skipped: list[str] = []
    for block in blocks:
        if block.marker in ("not-executed", "requires-services") and not block.marker_value:
            raise DocBlockError(f"{block.where}: <!-- {block.marker}: --> needs a reason")
        if block.marker == "not-executed" or block.language not in RUNNABLE_LANGUAGES:
            continue
        if block.marker == "requires-services" and os.environ.get("PLEXICA_REQUIRE_SERVICES") != "1":
            skipped.append(f"{block.where}: {block.marker_value}")
            continue
        path = run.write_file(block) if block.marker == "file" else None
        if block.language == "python":
            if path is None:
                await run.python(block)
            else:
                try:
                    compile(block.text, str(path), "exec", dont_inherit=True)
                except SyntaxError as exc:
                    raise DocBlockError(f"{block.where}: does not compile: {exc}") from exc
        elif block.language == "console":
            await anyio.to_thread.run_sync(run.console, block)
        elif block.language in SHELL_LANGUAGES:
            await anyio.to_thread.run_sync(run.shell, block)
        elif block.language == "toml":
            run.toml(block, path)
        else:
            run.json(block)
    return skipped


@pytest.fixture
def page_dir(tmp_path: Path) -> Iterator[Path]:
    """The page's project directory; modules imported from it are forgotten afterwards."""
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.mark.parametrize("page", doc_pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_block_of_the_page_runs(page: Path, page_dir: Path) -> None:
    skipped = anyio.run(run_page, parse_blocks(page), page_dir)
    if skipped:
        pytest.skip("needs the services (PLEXICA_REQUIRE_SERVICES=1): " + "; ".join(skipped))


def test_no_page_needs_sphinx_to_show_its_content() -> None:
    """Pages read on GitHub or in an editor too: no autodoc or raw reST, only the index's toctree."""
    sphinx_only = [
        block.where
        for page in doc_pages()
        for block in parse_blocks(page)
        if block.language.startswith("{") and block.language != "{toctree}"
    ]
    assert sphinx_only == []


# -- the harness itself --------------------------------------------------------------------------

SAMPLE = """\
# Sample

```python
value = 40
```

Shown only:

<!-- not-executed: shows a mistake -->
```python
raise RuntimeError("never run")
```

```python
import anyio
await anyio.sleep(0)
assert value + 2 == 42
```

<!-- file: conf/plexica.toml -->
```toml
[http]
port = 9000
```

```console
$ plexica version
...
$ cd conf
```

```yaml
kind: NotRun
```

<!-- requires-services: needs PostgreSQL -->
```python
raise RuntimeError("only with the services")
```
"""


def test_the_harness_runs_marked_pages_and_fails_on_each_kind_of_drift(tmp_path: Path) -> None:
    page = ROOT / "docs" / "sample.md"
    blocks = parse_blocks(page, SAMPLE)
    assert [(b.language, b.marker) for b in blocks] == [
        ("python", None),
        ("python", "not-executed"),
        ("python", None),
        ("toml", "file"),
        ("console", None),
        ("yaml", None),
        ("python", "requires-services"),
    ]
    if os.environ.get("PLEXICA_REQUIRE_SERVICES") == "1":
        with pytest.raises(DocBlockError, match="only with the services"):
            anyio.run(run_page, blocks, tmp_path)
    else:
        assert anyio.run(run_page, blocks, tmp_path) == ["docs/sample.md:37 (python): needs PostgreSQL"]
    assert (tmp_path / "conf" / "plexica.toml").is_file()

    drifts = {
        "```python\nimport plexica\nplexica.no_such_name\n```\n": "raised AttributeError",
        "```toml\n[http]\nprot = 9000\n```\n": "did you mean 'port'",
        '```json\n{"a": 1,}\n```\n': "not JSON",
        "```console\n$ plexica version\n9.9.9\n```\n": "printed",
        "```console\n$ plexica tenants show nobody\n```\n": "exited 1, not 0",
        "```console\n$ plexica version\n(exit 1)\n```\n": "exited 0, not 1",
        "```bash\ncurl http://example.invalid\n```\n": "cannot run `curl",
        "<!-- not-executed: -->\n```python\npass\n```\n": "needs a reason",
    }
    for text, message in drifts.items():
        with pytest.raises(DocBlockError, match=re.escape(message)):
            anyio.run(run_page, parse_blocks(page, text), tmp_path / f"d{len(message)}")
