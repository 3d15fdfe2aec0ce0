"""The FastAPI dependency: ``jobs: JobManager = Depends(get_job_manager)``.
It needs nothing from FastAPI itself (the ``fastapi`` extra only installs
FastAPI); see `taskhost_client.shared`."""

from .shared import close_job_manager, get_job_manager

__all__ = ["close_job_manager", "get_job_manager"]
