"""Selection among a prompt's scored candidates, the formats its choices are written in, and
the statistics of what best-of-N gains."""
