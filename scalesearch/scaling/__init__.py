"""The scalable family: B0 as data (spec), the network built from a spec (model), its measured cost (cost), the
coefficients and their rules (coefficients), and compound scaling at equal measured cost (scaler: Scaler, family).
Plain Python + torch: no Ray, no Hydra."""
