"""Scoring, the one core every consumer uses (``rmkit score``, sampling, ``rmkit eval``, the
leaderboard, chat, the UI, ``rmkit serve``): reward models, verifiers, ``module:function``
scorers and the weighted set of them."""
