"""The pipeline machinery: config composition and schema, the stage runner, DVC deps, metrics, gates, reports."""
