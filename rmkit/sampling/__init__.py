"""Best-of-N sampling on a run folder: a policy samples N candidates per prompt, which the run's
stages then score (:mod:`rmkit.scoring`) and select from (:mod:`rmkit.selection`); each stage
resumes."""
