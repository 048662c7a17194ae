"""One training: the datasets decoded once (data) and the proxy run of a scaled baseline (proxy)."""
