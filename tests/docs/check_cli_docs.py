#!/usr/bin/env python3
"""Checks that the docs are true to the command-line tools' --help.

For every tool given with --tool NAME=PATH it runs `PATH --help` and
compares the long options the help defines with the flag table of the
tool's reference section (TOOLS below):

  * a flag the help defines that the table lacks, and a flag the table
    lists that the help does not define, are each an error naming the flag;
  * where both the help and the table's default column state a default,
    they must agree (normalized: backticks, case, a trailing remark);
  * for genomed, the --config key list of operations.md must be its flags
    with '_' for '-';
  * every command line in README.md and docs/*.md (fenced blocks and inline
    code) that runs one of the tools may use only flags that tool defines.

Reads only the repository (--source) and the built tools. Exit 0 when all
agree, 1 listing every disagreement, 2 on a usage or set-up error.
"""

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ToolDoc:
    doc: str                 # the reference document, relative to the source tree
    section: str             # the heading whose tables are the flag reference
    default_column: int = 1  # the table column holding the default (0: the flag)
    # Flags the tool accepts on purpose without listing them in --help, with
    # the reason; commands in the docs may use them.
    hidden: dict = field(default_factory=dict)


TOOLS = {
    "genomed": ToolDoc("docs/operations.md", "## Flags"),
    "genomectl": ToolDoc("docs/operations.md", "## genomectl"),
    "genome-fixture": ToolDoc("docs/operations.md", "## genome-fixture"),
    "genome-stress": ToolDoc(
        "docs/stress.md", "## Flags",
        hidden={"--victim": "the child mode of --chaos kill-clients, started by the harness"}),
    "genome-bench": ToolDoc("docs/performance.md", "### genome-bench flags"),
}

# The flags of one tool that a command line hands on to another, after a lone
# `--` (genome-stress --spawn ... -- GENOMED-FLAGS).
PASSES_ON = {"genome-stress": "genomed"}

FLAG = r"--[a-z][a-z0-9-]*[a-z0-9]"
# A flag that a help line defines: the line's first word (after "-h, "),
# indented at most this much (deeper lines continue a description).
DEFINITION_MAX_INDENT = 8


@dataclass
class HelpFlag:
    name: str
    description: str  # the definition line's text after the flag, and its continuation lines


def help_flags(text):
    """The flags a --help text defines, in order, with their descriptions."""
    flags = {}
    current = None
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        m = re.match(r"(?:-[a-zA-Z], )?(" + FLAG + r")\b(.*)", stripped)
        if m and indent <= DEFINITION_MAX_INDENT:
            current = HelpFlag(m.group(1), m.group(2).strip())
            flags.setdefault(current.name, current)
        elif current and stripped and indent > DEFINITION_MAX_INDENT:
            current.description += " " + stripped
        else:
            current = None
    # Options shown only in a synopsis: "acquire NAME [--hold S]", "[--quick]".
    for name in re.findall(r"\[(" + FLAG + r")\b", text):
        flags.setdefault(name, HelpFlag(name, ""))
    return flags


def help_default(description):
    """The default a help description states, or None: "(default 1G; ...)",
    "(default: cores)", or "text (default) or json"."""
    found = []
    m = re.search(r"(?:\(|; )default:?\s+([^;,)]+)", description)
    if m:
        found.append((m.start(), m.group(1).split(":")[0]))
    m = re.search(r"([^\s(]+) \(default\)", description)
    if m:
        found.append((m.start(), m.group(1)))
    if not found:
        return None
    return normalize(min(found)[1])


def normalize(text):
    text = text.replace("`", "").replace("**", "").replace('"', "").strip().lower()
    # "1 048 576" and "604 800 000" are numbers.
    return re.sub(r"(?<=\d) (?=\d{3}\b)", "", text)


def defaults_agree(help_value, doc_value):
    """True if the table's default states the help's: the same leading value,
    or every word of a wordy help default ("cores", "next to genomed") among
    the table's words."""
    doc = normalize(doc_value)
    doc_words = re.findall(r"[a-z0-9.:_/-]+", doc)
    if not doc_words:
        return False
    if help_value == doc_words[0] or doc.startswith(help_value):
        return True
    return not re.match(r"\d", help_value) and set(help_value.split()) <= set(doc_words)


def section_lines(text, heading):
    """The lines under `heading` up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == heading:
            out = []
            for rest in lines[i + 1:]:
                m = re.match(r"(#+) ", rest)
                if m and len(m.group(1)) <= level:
                    break
                out.append(rest)
            return out
    return None


def table_flags(lines, default_column):
    """Flag -> its default cell, for every table row whose first cell is a flag."""
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not cells:
            continue
        for name in re.findall(r"`(?:-[a-zA-Z], )?(" + FLAG + r")\b", cells[0]):
            rows[name] = cells[default_column] if default_column < len(cells) else ""
    return rows


def run_help(tool, path):
    try:
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{tool}: cannot run '{path} --help': {e}"
    if r.returncode != 0:
        return None, f"{tool}: '{path} --help' exited {r.returncode}: {r.stderr.strip()[:300]}"
    return r.stdout, None


def check_tool(tool, help_text, source, errors):
    spec = TOOLS[tool]
    defined = help_flags(help_text)
    doc_path = source / spec.doc
    lines = section_lines(doc_path.read_text(encoding="utf-8"), spec.section)
    if lines is None:
        errors.append(f"{tool}: {spec.doc} has no section '{spec.section}' (its flag reference)")
        return defined
    table = table_flags(lines, spec.default_column)
    where = f"{spec.doc} '{spec.section}'"
    if not table:
        errors.append(f"{tool}: {where} has no flag table")
    for name in defined:
        if name != "--help" and name not in table:
            errors.append(f"{tool}: {name} is in --help but not in the flag table of {where}")
    for name in table:
        if name not in defined:
            errors.append(f"{tool}: {name} is in the flag table of {where} but not in --help")
    compared = []
    for name, flag in defined.items():
        if name not in table or spec.default_column == 0:
            continue
        stated = help_default(flag.description)
        doc_default = table[name]
        if stated is None or not normalize(doc_default):
            continue
        compared.append(name)
        if not defaults_agree(stated, doc_default):
            errors.append(f"{tool}: {name}: --help says default '{stated}', "
                          f"{where} says '{doc_default}'")
    print(f"{tool}: {len(defined)} flags in --help, {len(table)} in {where}, "
          f"{len(compared)} defaults compared")
    return defined


def check_config_keys(defined, source, errors):
    """operations.md's --config key list is genomed's flags with '_' for '-'."""
    text = (source / "docs/operations.md").read_text(encoding="utf-8")
    lines = section_lines(text, "### `--config FILE.json`")
    if lines is None:
        errors.append("genomed: docs/operations.md has no section '### `--config FILE.json`'")
        return
    paragraph = " ".join(lines).split(" - ")[0]
    m = re.search(r"in\s+place of `-`:(.*?)\.(?:\s|$)", paragraph)
    if not m:
        errors.append("genomed: the --config section of docs/operations.md lists no keys "
                      "(\"... in place of `-`: `socket`, ...\")")
        return
    listed = set(re.findall(r"`([a-z_]+)`", m.group(1)))
    expected = {f[2:].replace("-", "_") for f in defined} - {"help", "config"}
    for key in sorted(expected - listed):
        errors.append(f"genomed: config key '{key}' (--{key.replace('_', '-')}) is missing "
                      "from the key list of docs/operations.md '--config FILE.json'")
    for key in sorted(listed - expected):
        errors.append(f"genomed: docs/operations.md lists config key '{key}', "
                      "which is no flag of genomed --help")


def command_texts(text):
    """(line number, text) of fenced code lines and of inline code spans."""
    out = []
    fenced = False
    prose = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            out.append((number, line))
        else:
            prose.append((number, line))
    # Inline spans may wrap: join the prose, remembering where each line starts.
    joined, starts = "", []
    for number, line in prose:
        starts.append((len(joined), number))
        joined += line + "\n"
    for m in re.finditer(r"`([^`]+)`", joined):
        number = max(n for pos, n in starts if pos <= m.start())
        out.append((number, m.group(1).replace("\n", " ")))
    return out


TERMINATORS = {"|", "||", "&", "&&", ";", "#", ">", "<", ")"}


def check_commands(known, source, errors):
    """Every flag a documented command passes to a tool is one the tool defines."""
    # A tool by name, or by a path into a build tree or a bin/ directory
    # (build/genomed, /usr/bin/genomectl), but not /var/lib/genomed.
    tool_re = re.compile(r"(?:^|(?<=[\s$(]))(?:[\w.-]*build[\w-]*/|\S*bin/|\./)?(" +
                         "|".join(map(re.escape, known)) + r")(?=\s)")
    paths = [source / "README.md"] + sorted((source / "docs").glob("*.md"))
    for path in paths:
        rel = path.relative_to(source)
        for number, text in command_texts(path.read_text(encoding="utf-8")):
            text = text.replace("\\", " ")
            for m in tool_re.finditer(text):
                tool = m.group(1)
                for word in text[m.end():].split():
                    if word in TERMINATORS or word[0] in "#|;&><)" or re.match(r"\d?[<>]", word):
                        break
                    if word == "--" and tool in PASSES_ON:
                        tool = PASSES_ON[tool]
                        if tool not in known:
                            break
                        continue
                    flag = re.match(FLAG + r"(?==|$)", word)
                    if flag and flag.group(0) not in known[tool]:
                        errors.append(f"{rel}:{number}: `{tool} ... {flag.group(0)}`: "
                                      f"{tool} --help defines no {flag.group(0)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path, help="the repository's root")
    parser.add_argument("--tool", action="append", default=[], metavar="NAME=PATH",
                        help=f"a built tool to check; NAME one of {', '.join(TOOLS)}")
    args = parser.parse_args()
    errors = []
    known = {}
    for item in args.tool:
        tool, _, path = item.partition("=")
        if tool not in TOOLS or not path:
            parser.error(f"--tool {item}: expected NAME=PATH, NAME one of {', '.join(TOOLS)}")
        help_text, error = run_help(tool, path)
        if error:
            print(error, file=sys.stderr)
            return 2
        defined = check_tool(tool, help_text, args.source, errors)
        known[tool] = set(defined) | set(TOOLS[tool].hidden) | {"--help"}
        if tool == "genomed":
            check_config_keys(defined, args.source, errors)
    check_commands(known, args.source, errors)
    for error in errors:
        print(f"MISMATCH {error}")
    missing = sorted(set(TOOLS) - set(known))
    if missing:
        print(f"not checked (not built in this tree): {', '.join(missing)}")
    print(f"{len(errors)} mismatch(es) between the docs and --help")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
