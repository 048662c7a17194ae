"""The command-line apps: cli (Hydra entry points and the Python front door), compose (the command line composed and
checked before Hydra runs), help, supervise (the console scripts' process), generate, rerender, validate, nas,
compare."""
