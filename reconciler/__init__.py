"""vectorops: reconcile vector indexes to DVC-pinned embedding datasets, Terraform-style."""

__version__ = "0.1.0"
