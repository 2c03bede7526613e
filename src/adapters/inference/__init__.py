"""Inference, in a room of its own: typed jobs (`jobs`), the worker processes that run them (`worker`),
the pool that hands jobs to them or to threads (`pool`), and the per-job stage timings."""
