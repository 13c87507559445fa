"""What users run besides the pipeline: search, submission, the command line."""
