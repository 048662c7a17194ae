"""``python -m scalesearch`` — the search app (same as the ``scalesearch`` console script, under its supervisor)."""

from .apps.supervise import main

if __name__ == "__main__":
    main()
