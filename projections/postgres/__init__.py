"""The PostgreSQL read model: migrations, pure row mapping, the projection and checksums."""
