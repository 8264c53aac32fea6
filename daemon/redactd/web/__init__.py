"""The web console and /metrics: pages for operators, reviewers and officers over the functions the CLI calls."""
