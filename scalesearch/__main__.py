"""``python -m scalesearch`` — the search app (same as the ``scalesearch`` console script)."""

from .cli import main

if __name__ == "__main__":
    main()
