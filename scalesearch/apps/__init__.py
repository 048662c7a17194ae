"""The command-line apps and their routing: cli (Hydra entry points and the Python front door), supervise (the
console scripts' process), generate, rerender, validate, nas, compare."""
