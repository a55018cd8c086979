import live  # noqa: F401  (the process environment, before any tool imports torch)
