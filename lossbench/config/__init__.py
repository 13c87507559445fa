"""Parameters: the params.yaml schema and its one validator, the loss option schemas, presets."""
