"""Models as rmkit loads and runs them: built-in short names, the length a model reads, the
one-output reward classifier, and the vLLM engine's memory and threads."""
