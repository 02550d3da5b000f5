"""Training: the reward-model trainer (``rmkit train``), its loss, memory plan, checkpoints and
metrics log; the policy's fine-tuning (``rmkit sft``) and rounds of it (``rmkit iterate``)."""
