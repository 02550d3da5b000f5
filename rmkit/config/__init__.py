"""Recipes: one YAML file of sections, each a dataclass that owns its settings.

- :mod:`rmkit.config.sections`: the sections (model, data, lora, train, sample, score, select,
  sft, iterate, serve) and :class:`~rmkit.config.sections.Recipe`, which holds them;
- :mod:`rmkit.config.fields`: the ranges numeric keys keep to;
- :mod:`rmkit.config.recipe`: a recipe file and ``section.key=value`` overrides, read and checked;
- :mod:`rmkit.config.fingerprint`: the result-affecting settings a run or checkpoint records;
- :mod:`rmkit.config.command_line`: the recipe on the command line (flags, ``rmkit config show``).
"""
