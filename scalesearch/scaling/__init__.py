"""The scalable family: B0 as data (spec), the network built from a spec (model), its measured cost (cost),
and compound scaling (scaler: coefficients, equal measured cost, the B0–B7 family). Plain Python + torch."""
