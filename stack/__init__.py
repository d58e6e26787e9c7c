"""The local stack: real servers installed from the package registries and run on loopback."""
