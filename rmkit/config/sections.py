"""The recipe's sections: one dataclass per stage, each with its keys' defaults, their help and
its own checks.

Every entry point reads the same :class:`Recipe`; each uses the sections it owns
(``rmkit train``: model, data, lora, train; ``rmkit sample-and-score``: sample, score,
select; ``rmkit serve``: score, serve). :mod:`rmkit.config.recipe` reads one from YAML. Each key
is a :func:`~rmkit.config.fields.setting`: its help is what ``rmkit config show`` and the verbs'
flags print, and ``neutral=True`` marks a key that changes speed, memory, logging or where
outputs go but no result, so a run resumes across a change of it
(:mod:`rmkit.config.fingerprint`).

The sections are defined in :mod:`rmkit.config.training_sections` (model, data, lora, train,
sft) and :mod:`rmkit.config.sampling_sections` (sample, score, select, iterate, serve); every
one of them is imported from here.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from rmkit.config.sampling_sections import (
    CATEGORY_TEMPERATURES,
    IterateConfig,
    SampleConfig,
    ScoreConfig,
    ScorerSpec,
    SelectConfig,
    ServeConfig,
)
from rmkit.config.training_sections import DataConfig, LoraConfig, ModelConfig, SftConfig, TrainConfig

__all__ = [  # every section's class is found here, whichever module of the two defines it
    "CATEGORY_TEMPERATURES", "SECTIONS", "DataConfig", "IterateConfig", "LoraConfig", "ModelConfig", "Recipe",
    "SampleConfig", "ScoreConfig", "ScorerSpec", "SelectConfig", "ServeConfig", "SftConfig", "TrainConfig",
]  # fmt: skip


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = typing.get_type_hints(Recipe)  # section name → its dataclass
