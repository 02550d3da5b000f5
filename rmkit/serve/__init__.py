"""``rmkit serve``: a recipe's scorers as an HTTP reward service (the verb is :mod:`rmkit.serve.verb`)."""
