"""cse: client-side envelope encryption for objects on S3, OSS and local stores."""

__version__ = "0.1.0"
