"""One training: the datasets (data: what a trial reads; images, archives, synthetic: decoded once on the driver)
and the proxy run of a scaled baseline (proxy)."""
