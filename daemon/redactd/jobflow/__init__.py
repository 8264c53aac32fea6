"""The job flow after admission: executors that run jobs locally or on other hosts."""
