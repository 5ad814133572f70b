"""The reference docs say what the code does: every key, field and export is documented."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from pydantic import BaseModel

import stacksim
from stacksim.filters import BUILTIN_FILTERS
from stacksim.scenario import Scenario
from stacksim.trace import FIELDS

DOCS = Path(__file__).parent.parent / "docs"


def documented_keys(text: str, heading: str) -> set[str]:
    """Backticked keys in the first column of the table under *heading*."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("section", [n for n in Scenario.model_fields if n not in ("filters", "faults")])
def test_every_scenario_key_is_documented(section: str) -> None:
    """docs/reference/scenario.md lists exactly the keys each table accepts."""
    model = Scenario.model_fields[section].annotation
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    keys = {f.alias or n for n, f in model.model_fields.items()}
    text = (DOCS / "reference" / "scenario.md").read_text()
    assert documented_keys(text, f"## `[{section}]`") == keys


@pytest.mark.parametrize("cls", BUILTIN_FILTERS, ids=[c.service_name for c in BUILTIN_FILTERS])
def test_every_builtin_filter_parameter_is_documented(cls: type[stacksim.DumpFilter]) -> None:
    """docs/reference/filters.md lists exactly each built-in filter's parameters."""
    text = (DOCS / "reference" / "filters.md").read_text()
    section = text.split(f"## `{cls.service_name}`", 1)[1].split("\n## ", 1)[0]
    table = section.split("| key |", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)) == set(cls.Config.model_fields)


def test_every_fault_kind_and_key_is_documented() -> None:
    """docs/reference/faults.md names every fault kind and every key a fault table takes."""
    from stacksim import scenario as sc

    text = (DOCS / "reference" / "faults.md").read_text()
    models = [sc.DeviceErrorFault, sc.DeviceTimeoutFault, sc.PowerLossFault, sc.FilterFault, sc.SlowFilterFault]
    kinds = {k for m in models for k in m.model_fields["kind"].annotation.__args__}  # type: ignore[union-attr]
    keys = {k for m in models for k in m.model_fields if k != "kind"}
    assert set(re.findall(r"^### `([a-z_]+)`", text, flags=re.MULTILINE)) == kinds
    assert documented_keys(text, "## Keys") == keys


def test_every_trace_field_is_documented() -> None:
    """docs/reference/trace-format.md lists exactly the trace fields."""
    text = (DOCS / "reference" / "trace-format.md").read_text()
    assert documented_keys(text, "| field |") == set(FIELDS)


def test_every_result_key_is_documented() -> None:
    """docs/reference/result-format.md lists exactly the result JSON keys."""
    from conftest import run

    result, _ = run()
    text = (DOCS / "reference" / "result-format.md").read_text()
    assert documented_keys(text, "| key |") == set(result.as_dict())


def test_public_api_is_exported_once_and_documented() -> None:
    """Every name in stacksim.__all__ exists, is listed once and in order, and is documented if callable."""
    names = stacksim.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))  # isort style
    for name in names:
        obj = getattr(stacksim, name)
        if callable(obj):
            assert obj.__doc__, name


ROOT = DOCS.parent
SOURCES = DOCS / "explanation" / "sources.md"
CITING = sorted(
    [
        ROOT / "README.md",
        *DOCS.rglob("*.md"),
        *(ROOT / "stacksim").rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
        *(ROOT / "scenarios").rglob("*.toml"),
    ]
)
"""Everything a reader or user sees that may cite a source: the docs, the code, the benchmarks, the scenarios."""

KEY = re.compile(r"\bS(\d+)([a-z]?)\b")
KEY_RANGE = re.compile(r"\bS(\d+)\s*[–…]\s*S?(\d+)\b")


def source_table() -> dict[str, str]:
    """Key → address column of the table in docs/explanation/sources.md."""
    rows = re.findall(r"^\| (S\d+[a-z]?) \| .+ \| (.+) \|$", SOURCES.read_text(), flags=re.MULTILINE)
    return dict(rows)


def cited_keys(text: str) -> set[str]:
    """Source keys cited in *text*, with ranges such as S39–S41 or S1…S53 expanded."""
    keys = {f"S{n}{suffix}" for n, suffix in KEY.findall(text)}
    for low, high in KEY_RANGE.findall(text):
        keys |= {f"S{n}" for n in range(int(low), int(high) + 1)}
    return keys


@pytest.mark.parametrize("path", CITING, ids=[str(p.relative_to(ROOT)) for p in CITING])
def test_nothing_cites_files_outside_the_repository(path: Path) -> None:
    """No doc, module, benchmark or scenario cites `shared/...`: the research notes are not in the repository."""
    assert "shared/" not in path.read_text(encoding="utf-8")


def test_every_source_key_has_a_title_and_an_address() -> None:
    """sources.md lists S1…S53, each with a title and an http(s) address or an explicit 'no public address'."""
    table = source_table()
    assert {f"S{n}" for n in range(1, 54)} <= set(table)
    for key, address in table.items():
        assert address.startswith("http") or address == "no public address", key


@pytest.mark.parametrize("path", CITING, ids=[str(p.relative_to(ROOT)) for p in CITING])
def test_every_cited_source_key_is_defined_with_an_address(path: Path) -> None:
    """Each key a file cites is in sources.md with an address; a key without one is only cited beside a key with one."""
    table = source_table()
    text = path.read_text(encoding="utf-8")
    assert cited_keys(text) - set(table) == set()
    for line in text.splitlines():
        keys = cited_keys(line)
        if any(table[k] == "no public address" for k in keys):
            assert any(table[k].startswith("http") for k in keys), line


def test_every_research_note_section_cited_is_summarised() -> None:
    """Each '§n' the code and docs cite for the research notes has a row in sources.md."""
    summarised = set(re.findall(r"^\| (§[\d.]+) \|", SOURCES.read_text(), flags=re.MULTILINE))
    cited = set()
    for path in CITING:
        if path == SOURCES:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if "spec §" in line:
                continue  # a datasheet's own section ("OEM spec §4.5.1"), not the research notes
            cited |= set(re.findall(r"§(\d+(?:\.\d+)*)", line))
    assert {f"§{c}" for c in cited} - summarised == set()


FENCE = re.compile(r"^(?P<indent> *)```(?P<info>\S*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", flags=re.MULTILINE | re.DOTALL)
SHELL = {"sh", "shell", "bash", "console"}
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
NOT_RUN = {
    ("python3", "-m", "pip"): "installing would change the environment the suite runs in (it runs against this checkout)",
    ("python3", "-m", "pytest"): "it is this suite; running it here would recurse",
}
"""Commands the docs show that this suite deliberately does not run, and why."""


def fenced_blocks(path: Path) -> list[tuple[str, str, int]]:
    """(info string, body with the fence's indent removed, line number) of every fenced block in *path*."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        indent = len(m["indent"])
        body = "".join(line[indent:] for line in m["body"].splitlines(keepends=True))
        blocks.append((m["info"], body, text[: m.start()].count("\n") + 1))
    return blocks


def documented_commands(path: Path) -> list[tuple[list[str], int, int]]:
    """(argv, expected exit status, line) of each `stacksim`/`python3 -m` command in *path*'s shell blocks, in order."""
    commands = []
    for info, body, line in fenced_blocks(path):
        if info not in SHELL:
            continue
        for n, command in enumerate(body.replace("\\\n", " ").splitlines()):
            for part in command.split("&&"):
                part = part.strip()
                if not part.startswith(("stacksim ", "python3 -m ")):
                    continue  # head, cat, ...: shown for the reader, not stacksim's contract
                code = re.search(r"#\s*exit (\d+)", part)
                commands.append((shlex.split(part, comments=True), int(code[1]) if code else 0, line + 1 + n))
    return commands


def files_shown(path: Path) -> dict[str, str]:
    """Files the page defines: fenced blocks whose first line is a comment naming the file (`# faulty.toml`)."""
    files = {}
    for _info, body, _line in fenced_blocks(path):
        first = body.split("\n", 1)[0]
        m = re.fullmatch(r"# ([\w.-]+\.(?:toml|py))", first)
        if m:
            files[m[1]] = body
    return files


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_fenced_block_says_what_it_holds(path: Path) -> None:
    """Each fenced block has an info string (sh for commands, text for output), so no command hides in an unlabelled block."""
    assert [line for info, _body, line in fenced_blocks(path) if not info] == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "path", [p for p in PAGES if documented_commands(p)], ids=[str(p.relative_to(ROOT)) for p in PAGES if documented_commands(p)]
)
def test_every_documented_command_runs(path: Path, tmp_path: Path) -> None:
    """Each command a page shows runs as shown, in order, beside the scenarios and the page's files, and exits as documented."""
    import shutil

    from conftest import invoke_cli  # in this process: a subprocess's start-up per command doubled the test's time

    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    for name, body in files_shown(path).items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    for argv, code, line in documented_commands(path):
        if tuple(argv[:3]) in NOT_RUN:
            continue
        if argv[0] == "stacksim":
            args = argv[1:]
        else:
            assert argv[:3] == ["python3", "-m", "stacksim"], f"{path.name}:{line}: unknown command {argv}"
            args = argv[3:]
        proc = invoke_cli(*args, cwd=tmp_path)
        assert proc.returncode == code, f"{path.name}:{line}: {shlex.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr


def test_docs_show_what_run_prints() -> None:
    """The summaries quoted in the CLI reference and the tutorial are lines of the golden output they quote."""
    golden = [line.rstrip() for line in (ROOT / "scenarios" / "crash-nvme-bitlocker.out").read_text().splitlines()]
    for page in (DOCS / "reference" / "cli.md", DOCS / "tutorial" / "first-crash-dump.md"):
        quoted = [body for info, body, _ in fenced_blocks(page) if info == "text" and "scenario crash-nvme-bitlocker" in body]
        assert quoted, page
        lines = [line.rstrip() for line in quoted[0].splitlines() if line.strip() != "..."]
        assert [line for line in lines if line not in golden] == [], page


def test_the_python_api_doc_lists_every_sweep_layer_column_in_order() -> None:
    """docs/reference/python-api.md names a sweep's per-layer columns exactly as stacksim.sweep.layer_columns gives them."""
    from stacksim.sweep import layer_columns

    text = (DOCS / "reference" / "python-api.md").read_text()
    section = text.split("`sweep` gives the rows", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"`(LAYER_[A-Za-z0-9_]+)`", section) == layer_columns(["LAYER"])


def test_the_result_format_doc_lists_exactly_the_resume_layer_keys() -> None:
    """docs/reference/result-format.md's resume.layers lists each resume layer's keys, in order (no rates, unlike layers)."""
    from test_resume import resume_run

    result, _ = resume_run()
    keys = {tuple(stats) for stats in result.as_dict()["resume"]["layers"].values()}
    text = (DOCS / "reference" / "result-format.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `resume` |"))
    documented = re.search(r"each `\{([^}]*)\}`", row)
    assert documented is not None
    assert keys == {tuple(documented.group(1).split(", "))}
