"""Read an InstructLab taxonomy tree, unchanged, into `Leaf` records.

Every qna.yaml under the root is a leaf (folders starting with "." are skipped). Reading a
leaf checks it on the way: the bytes (empty, not UTF-8), the YAML (syntax, duplicate keys),
the folder it sits in, the instructlab-schema format, and our own checks; every problem found
is returned, each with the line and column of the key or item at fault.

    leaves = load_taxonomy("taxonomy")          # raises TaxonomyInvalid listing every problem
    leaves, problems = scan_taxonomy("taxonomy")  # best effort: valid leaves plus problems
"""

from __future__ import annotations

from pathlib import Path

from alignlab.taxonomy import checks
from alignlab.taxonomy.errors import TaxonomyError, TaxonomyInvalid
from alignlab.taxonomy.leaf import (
    FREEFORM_SKILL, GROUNDED_SKILL, KIND_FOLDERS, KNOWLEDGE, QA, DocumentSettings, Leaf, Problem,
    SeedExample,
)
from alignlab.taxonomy.schema import key_label, schema_problems
from alignlab.yamlpos import PositionedYaml, YamlSyntaxError, load_yaml

QNA = "qna.yaml"


def find_qna_files(root: str | Path) -> list[Path]:
    """Every qna.yaml under `root`, sorted; raises if `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise TaxonomyError(f"taxonomy folder {root} not found (give the folder holding "
                            f"knowledge/ and compositional_skills/)")
    return sorted(p for p in root.rglob(QNA)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def scan_taxonomy(root: str | Path, *, max_seed_tokens: int | None = checks.DEFAULT_MAX_SEED_TOKENS,
                  count_tokens: checks.TokenCounter | None = None) -> tuple[list[Leaf], list[Problem]]:
    """Read every leaf: the ones that follow the format, and every problem found in any."""
    root = Path(root)
    files = find_qna_files(root)
    if not files:
        raise TaxonomyError(f"no {QNA} files under {root}: a leaf is a folder holding a {QNA}")
    leaves, problems = [], []
    for qna_path in files:
        leaf, found = read_leaf(root, qna_path, max_seed_tokens=max_seed_tokens, count_tokens=count_tokens)
        problems += found
        if leaf is not None:
            leaves.append(leaf)
    return leaves, problems


def load_taxonomy(root: str | Path, **options) -> list[Leaf]:
    """Every leaf of the tree; raises `TaxonomyInvalid` if any qna.yaml has a problem.
    Documents are not read here: `read_documents(leaf)` does that."""
    leaves, problems = scan_taxonomy(root, **options)
    if problems:
        raise TaxonomyInvalid(problems)
    return leaves


def read_leaf(root: Path, qna_path: Path, *, max_seed_tokens: int | None = checks.DEFAULT_MAX_SEED_TOKENS,
              count_tokens: checks.TokenCounter | None = None) -> tuple[Leaf | None, list[Problem]]:
    """One leaf and its problems; the leaf is None when the file does not follow the format."""
    name = qna_path.parent.relative_to(root).as_posix()
    text, problem = read_text(qna_path, name)
    if problem:
        return None, [problem]
    try:
        doc = load_yaml(qna_path, text)
    except YamlSyntaxError as e:
        return None, [Problem(qna_path, e.line, e.col, e.message, name)]
    if doc.data is None:
        return None, [Problem(qna_path, 1, 1, f"{QNA} holds only comments", name)]

    problems = [Problem(qna_path, line, col, f"duplicate key {keys[-1]!r} in {key_label(keys[:-1])} "
                                              f"(only the last one would be read)", name)
                for keys, (line, col) in doc.duplicate_keys]
    tree = name.split("/", 1)[0]
    if tree not in KIND_FOLDERS:
        problems.append(Problem(qna_path, 1, 1, f"{tree!r} is not a taxonomy folder: leaves live under "
                                                f"{', '.join(f + '/' for f in KIND_FOLDERS)}", name))
        guessed = "knowledge" if isinstance(doc.data, dict) and "document" in doc.data else "compositional_skills"
        return None, problems + schema_problems(doc, guessed, name)

    format_problems = schema_problems(doc, tree, name)
    problems += format_problems
    problems += checks.duplicate_questions(doc, name)
    problems += checks.long_seeds(doc, name, max_seed_tokens, count_tokens)
    if tree != "knowledge":
        problems += checks.mixed_contexts(doc, name)
    problems.sort(key=lambda p: (p.line, p.col))
    leaf = None if format_problems else leaf_from_yaml(name, tree, doc)
    return leaf, problems


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


def leaf_from_yaml(name: str, tree: str, doc: PositionedYaml) -> Leaf:
    """Build the record from a file that passed the schema."""
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
    if tree == "knowledge":
        kind = KNOWLEDGE
    else:
        kind = GROUNDED_SKILL if any(s.context is not None for s in seeds) else FREEFORM_SKILL
    document = data.get("document")
    folder = doc.path.parent
    return Leaf(
        path=name, kind=kind, qna_path=doc.path, version=data["version"],
        created_by=data["created_by"], task_description=data.get("task_description", ""),
        domain=data.get("domain"), seed_examples=seeds,
        document=DocumentSettings(document["repo"], str(document["commit"]), tuple(document["patterns"]))
        if document else None,
        document_outline=data.get("document_outline"),
        extra_files=tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.name != QNA)),
        yaml=doc)
