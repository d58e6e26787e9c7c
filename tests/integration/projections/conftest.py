"""Projection and replay tests use the processors' fixtures: the whole topic catalogue
under a test's own prefix, and a stage context on the real blob store."""

from tests.integration.processors.conftest import TopicsUnderTest, ctx, topics_under_test

__all__ = ["TopicsUnderTest", "ctx", "topics_under_test"]
