"""The apps on top of the stages: chat in the terminal, the web UI, and the reward service
(``rmkit serve``)."""
