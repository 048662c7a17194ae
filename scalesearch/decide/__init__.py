"""The facts, computed from the tables: the tables and their aggregation (results), statistics (stats, ranks), the
model over shares and its optimum (shares, optimum), accuracy-vs-cost curves (curves), the verdict (verdict).
Plain Python + numpy/scipy: no Ray, no Hydra."""
