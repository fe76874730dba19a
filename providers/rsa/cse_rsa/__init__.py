"""Local RSA key provider for cse."""
