"""``rmkit serve``: a recipe's scorers as an HTTP reward service (the verb is :mod:`rmkit.apps.serve.verb`)."""
