"""Judging reward models and policies: pairwise accuracy (``rmkit eval``), win rates against a
reference (``rmkit leaderboard``), policies side by side (``rmkit compare``)."""
