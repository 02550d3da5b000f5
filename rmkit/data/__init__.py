"""Data: preference pairs and prompts read from files or the hub, each record parsed once into a
conversation, and encoded with a chat template."""
