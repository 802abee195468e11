"""InstructLab taxonomy trees: load leaves, validate them, read their documents, diff against git.

    from alignlab.taxonomy import load_taxonomy, read_documents, validate_taxonomy, diff_taxonomy

    leaves = load_taxonomy("taxonomy")                  # list[Leaf]; raises TaxonomyInvalid
    problems = validate_taxonomy("taxonomy")            # list[Problem]: errors (InstructLab) and warnings
    docs = read_documents(leaf)                         # list[Document] of a knowledge leaf
    changed = diff_taxonomy("taxonomy", base="origin/main").changed_leaves
"""

from alignlab.taxonomy.diff import LeafChange, TaxonomyDiff, diff_taxonomy
from alignlab.taxonomy.documents import Document, read_documents, resolve_documents
from alignlab.taxonomy.errors import DocumentError, TaxonomyError, TaxonomyInvalid
from alignlab.taxonomy.leaf import (
    FREEFORM_SKILL, GROUNDED_SKILL, KINDS, KNOWLEDGE, QA, DocumentSettings, Leaf, Problem, SeedExample,
)
from alignlab.taxonomy.load import load_taxonomy, scan_taxonomy
from alignlab.taxonomy.validate import check_taxonomy, validate_taxonomy

__all__ = [
    "FREEFORM_SKILL", "GROUNDED_SKILL", "KINDS", "KNOWLEDGE", "QA", "Document", "DocumentError",
    "DocumentSettings", "Leaf", "LeafChange", "Problem", "SeedExample", "TaxonomyDiff", "TaxonomyError",
    "TaxonomyInvalid", "check_taxonomy", "diff_taxonomy", "load_taxonomy", "read_documents",
    "resolve_documents", "scan_taxonomy", "validate_taxonomy",
]
