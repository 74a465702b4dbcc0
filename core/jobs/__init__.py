"""Long work as jobs: the job model and kinds, the SQLite store, local and Ray executors and the
worker process that runs one job."""
