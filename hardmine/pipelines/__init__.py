"""End-to-end pipelines that chain the stages: the synthetic-face demo and the experiment."""
