"""``maya review``: look at a dedup run's groups in the browser, correct them, act on them, and keep the
decisions as labelled pairs. ``state`` says what decisions mean, ``session`` does what the page asks,
``server`` is the HTTP guard and routes, ``page`` the one inline HTML document."""
