"""Pipeline steps (a function each, named for what it produces) and the ``matcher`` CLI."""
