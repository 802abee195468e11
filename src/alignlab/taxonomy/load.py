"""Read an InstructLab taxonomy tree, unchanged, into `Leaf` records.

Every qna.yaml under the root is a leaf (folders starting with "." are skipped). Reading a
leaf checks it on the way: InstructLab's own parser gives the verdict (its schema version,
its lint, its schemas), alignlab places each of its findings at the key at fault and adds its
own checks as warnings (duplicate keys and questions, seed length, folder, mixed seeds).

    leaves = load_taxonomy("taxonomy")          # raises TaxonomyInvalid listing every error
    leaves, problems = scan_taxonomy("taxonomy")  # best effort: valid leaves plus problems
    leaves, elsewhere = load_selected("taxonomy", "knowledge/*")  # errors block only what is selected
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from alignlab.taxonomy import checks
from alignlab.taxonomy.errors import TaxonomyError, TaxonomyInvalid
from alignlab.taxonomy.leaf import (
    FREEFORM_SKILL, GROUNDED_SKILL, KIND_FOLDERS, KNOWLEDGE, QA, WARNING, DocumentSettings, Leaf, Problem,
    SeedExample, problem_at,
)
from alignlab.taxonomy.instructlab import exception_place, instructlab_verdict
from alignlab.taxonomy.schema import key_label, verdict_problems
from alignlab.yamlpos import PositionedYaml, YamlSyntaxError, load_yaml

QNA = "qna.yaml"
MISNAMED_QNA = "qna.yml"  # InstructLab reads qna.yaml only; a leaf written so is said, not read


def find_qna_files(root: str | Path) -> list[Path]:
    """Every qna.yaml under `root`, sorted; raises if `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise TaxonomyError(f"taxonomy folder {root} not found (give the folder holding "
                            f"knowledge/ and compositional_skills/)")
    return _files_named(root, QNA)


def _files_named(root: Path, name: str) -> list[Path]:
    return sorted(p for p in root.rglob(name)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def misnamed_leaves(root: Path, part: Path) -> list[Problem]:
    """A warning for each qna.yml: InstructLab ignores it, so it is not read, but it is said."""
    return [Problem(path, 1, 1, f"{MISNAMED_QNA} is not read (InstructLab reads only {QNA}): rename it to {QNA}",
                    path.parent.relative_to(root).as_posix(), WARNING)
            for path in _files_named(part, MISNAMED_QNA)]


def within_taxonomy(path: Path) -> tuple[Path, Path]:
    """(the taxonomy's root, the part of it to read). A leaf's folder, its qna.yaml or any folder
    below knowledge/ or compositional_skills/ is read as that part of its taxonomy, so each leaf
    keeps its tree (which decides its schema) and its name."""
    part = path.parent if path.name == QNA and path.is_file() else path
    if part.is_dir() and not any((part / folder).is_dir() for folder in KIND_FOLDERS):
        absolute = part.absolute()
        for i in range(len(absolute.parts) - 1, 0, -1):
            if absolute.parts[i] in KIND_FOLDERS:
                return Path(*absolute.parts[:i]), absolute
    return part, part


def scan_taxonomy(root: str | Path, *, max_seed_tokens: int | checks.SeedBudget | None = checks.DEFAULT_SEED_BUDGET,
                  count_tokens: checks.TokenCounter | None = None) -> tuple[list[Leaf], list[Problem]]:
    """Read every leaf: the ones InstructLab accepts, and every problem (error or warning) in any."""
    root, part = within_taxonomy(Path(root))
    files = find_qna_files(part)
    misnamed = misnamed_leaves(root, part)
    if not files:
        hint = f" ({len(misnamed)} {MISNAMED_QNA} found: rename them to {QNA})" if misnamed else ""
        raise TaxonomyError(f"no {QNA} files under {part}: a leaf is a folder holding a {QNA}{hint}")
    leaves, problems = [], misnamed
    for qna_path in files:
        leaf, found = read_leaf(root, qna_path, max_seed_tokens=max_seed_tokens, count_tokens=count_tokens)
        problems += found
        if leaf is not None:
            leaves.append(leaf)
    return leaves, problems


def load_taxonomy(root: str | Path, **options) -> list[Leaf]:
    """Every leaf of the tree; raises `TaxonomyInvalid` if InstructLab rejects any qna.yaml
    (warnings do not stop it). Documents are not read here: `read_documents(leaf)` does that."""
    return load_selected(root, None, **options)[0]


def matches_leaf(name: str, pattern: str) -> bool:
    """Whether a `--leaf` glob selects the leaf `name`; a plain prefix selects a subtree, by
    whole folder names (`knowledge` selects `knowledge/...`, not `knowledgebase/...`)."""
    prefix = pattern.rstrip("/*")
    return fnmatch.fnmatch(name, pattern) or name == prefix or name.startswith(prefix + "/")


def load_selected(root: str | Path, pattern: str | None, **options) -> tuple[list[Leaf], list[Problem]]:
    """The leaves `pattern` selects (every leaf when None), and the errors of the leaves it
    leaves out. Raises `TaxonomyInvalid` only when InstructLab rejects a selected qna.yaml: a
    broken leaf elsewhere in the tree must not stop work on the ones asked for."""
    leaves, problems = scan_taxonomy(root, **options)
    errors = [p for p in problems if p.is_error]
    if pattern:
        leaves = [leaf for leaf in leaves if matches_leaf(leaf.path, pattern)]
    selected = [p for p in errors if not pattern or p.leaf is None or matches_leaf(p.leaf, pattern)]
    if selected:
        raise TaxonomyInvalid(selected)
    return leaves, [p for p in errors if p not in selected]


def read_leaf(root: Path, qna_path: Path, *,
              max_seed_tokens: int | checks.SeedBudget | None = checks.DEFAULT_SEED_BUDGET,
              count_tokens: checks.TokenCounter | None = None) -> tuple[Leaf | None, list[Problem]]:
    """One leaf and its problems. InstructLab's parser gives the verdict; the leaf is None when
    it rejects the file (or the file holds nothing), and alignlab's own checks add warnings."""
    name = qna_path.parent.relative_to(root).as_posix()
    verdict = instructlab_verdict(qna_path)
    text, problem = read_text(qna_path, name)
    doc = None
    if problem is None:
        try:
            doc = load_yaml(qna_path, text)
        except YamlSyntaxError as e:
            problem = Problem(qna_path, e.line, e.col, e.message, name)
    if verdict.exception is not None:  # InstructLab could not read the file at all
        return None, [problem or _unreadable(qna_path, name, verdict.exception)]
    if doc is None:  # an empty file: InstructLab skips it with a warning, as we do
        return None, verdict_problems(verdict, None, qna_path, name, "compositional_skills")

    tree = name.split("/", 1)[0]
    schema_name = schema_for(tree, doc.data)
    problems = verdict_problems(verdict, doc, qna_path, name, schema_name)
    problems += _own_checks(doc, name, tree, schema_name, max_seed_tokens, count_tokens,
                            lines_reported={p.line for p in problems})
    problems.sort(key=lambda p: (p.line, p.col))
    if not verdict.valid or not isinstance(doc.data, dict):
        return None, problems
    return leaf_from_yaml(name, schema_name, doc, verdict.version), problems


def schema_for(tree: str, data: object) -> str:
    """The schema InstructLab checks a file against: its top folder's, or, outside the two
    folders it knows (foundational_skills too), knowledge when the file has a `document`."""
    if tree in ("knowledge", "compositional_skills"):
        return tree
    return "knowledge" if isinstance(data, dict) and "document" in data else "compositional_skills"


def _own_checks(doc: PositionedYaml, name: str, tree: str, schema_name: str,
                max_seed_tokens: int | checks.SeedBudget | None, count_tokens: checks.TokenCounter | None,
                lines_reported: set[int]) -> list[Problem]:
    """alignlab's warnings; a duplicate key yamllint already reported (version 2 and later)
    is not said twice."""
    problems = [problem_at(doc, keys, f"duplicate key {keys[-1]!r} in {key_label(keys[:-1])} "
                                      f"(only the last one is read)", name)
                for keys, (line, _) in doc.duplicate_keys if line not in lines_reported]
    if tree not in KIND_FOLDERS:
        problems.append(problem_at(doc, (), f"{tree!r} is not a taxonomy folder: leaves live under "
                                            f"{', '.join(f + '/' for f in KIND_FOLDERS)}; read as "
                                            f"{schema_name.replace('_', ' ')}", name))
    if not isinstance(doc.data, dict):
        return problems
    problems += checks.duplicate_questions(doc, name)
    problems += checks.long_seeds(doc, name, max_seed_tokens, count_tokens)
    if schema_name != "knowledge":
        problems += checks.mixed_contexts(doc, name)
    return problems


def _unreadable(qna_path: Path, name: str, exception: BaseException) -> Problem:
    line, col = exception_place(exception) or (1, 1)
    return Problem(qna_path, line, col, f"InstructLab cannot read the file: {exception}", name)


def read_text(path: Path, leaf: str | None) -> tuple[str, Problem | None]:
    """A file's UTF-8 text, or a problem saying why it cannot be read (with the bad byte's place)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return "", Problem(path, 1, 1, f"cannot read: {e.strerror or e}", leaf)
    if not raw.strip():
        return "", Problem(path, 1, 1, "file is empty", leaf)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        return "", Problem(path, line, col, f"not UTF-8 text (byte 0x{raw[e.start]:02x}); "
                                            f"save the file as UTF-8", leaf)


def leaf_from_yaml(name: str, schema_name: str, doc: PositionedYaml, version: int) -> Leaf:
    """Build the record from a file InstructLab accepted, at the schema version it used."""
    data = doc.data
    seeds = []
    for i, item in enumerate(data["seed_examples"]):
        if "questions_and_answers" in item:  # knowledge: one context, several Q&A
            qas = [(qa, ("seed_examples", i, "questions_and_answers", j, "question"))
                   for j, qa in enumerate(item["questions_and_answers"])]
        else:
            qas = [(item, ("seed_examples", i, "question"))]
        seeds.append(SeedExample(
            index=i, line=doc.loc(("seed_examples", i))[0], context=item.get("context"),
            questions_and_answers=tuple(QA(qa["question"], qa["answer"], doc.loc(keys)[0])
                                        for qa, keys in qas)))
    if schema_name == "knowledge":
        kind = KNOWLEDGE
    else:
        kind = GROUNDED_SKILL if any(s.context is not None for s in seeds) else FREEFORM_SKILL
    document = data.get("document")
    folder = doc.path.parent
    return Leaf(
        path=name, kind=kind, qna_path=doc.path, version=version,
        created_by=data["created_by"], task_description=data.get("task_description") or "",
        domain=data.get("domain"), seed_examples=seeds,
        document=DocumentSettings(document["repo"], str(document["commit"]), tuple(document["patterns"]))
        if document else None,
        document_outline=data.get("document_outline"),
        extra_files=tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.name != QNA)),
        yaml=doc)
