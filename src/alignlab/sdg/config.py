"""`generate:` in alignlab.yaml — how much the teacher writes per leaf and how strictly it is judged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alignlab.llm.config import Section


class JudgeThresholds(Section):
    """Minimum expected score (1-5) each judge must give for a candidate to be kept."""

    faithfulness: float = Field(3.0, ge=1, le=5, description="knowledge: answer supported by the chunk")
    relevance: float = Field(3.0, ge=1, le=5, description="knowledge: answer responds to the question")
    standalone: float = Field(3.0, ge=1, le=5, description="knowledge: question understandable alone")
    question: float = Field(3.0, ge=1, le=5, description="skills: instruction is a good task example")
    quality: float = Field(3.0, ge=1, le=5, description="skills: the answer is good")


class MagpieConfig(Section):
    enabled: bool | Literal["auto"] = Field("auto", description="auto: on when the teacher is local")
    count: int = Field(16, ge=0, description="instructions to draw out of the teacher")


class GenerateConfig(Section):
    samples_per_seed: int = Field(3, ge=1, description="skills: new candidates per seed example")
    qa_per_chunk: int = Field(3, ge=1, description="knowledge: question candidates per document chunk")
    rephrase_per_chunk: int = Field(0, ge=0, description="knowledge: rewrites of each chunk in the teacher's words, "
                                                           "each judged faithful to it")
    max_samples_per_leaf: int = Field(60, ge=1, description="accepted samples kept per leaf at most")
    chunk_tokens: int = Field(256, ge=32, description="document chunk size in teacher tokens")
    chunk_overlap: int = Field(32, ge=0, description="tokens shared by consecutive chunks")
    max_new_tokens: int = Field(160, ge=8, description="longest teacher answer or context")
    max_question_tokens: int = Field(64, ge=8, description="longest generated question or task")
    temperature: float = Field(0.8, ge=0, description="sampling temperature for new questions/contexts")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling for new questions/contexts")
    answer_temperature: float = Field(0.0, ge=0, description="0 = greedy answers, most faithful")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="drop a question this similar to the pool")
    thresholds: JudgeThresholds = JudgeThresholds()
    magpie: MagpieConfig = MagpieConfig()
    prompts_dir: str | None = Field(None, description="folder of .jinja templates overriding built-ins")
    engine: Literal["local", "ray"] = Field("local", description="local: one process; ray: leaves as Ray tasks")
    ray_shard_chunks: int = Field(8, ge=1, description="ray: document chunks per task for large leaves")
