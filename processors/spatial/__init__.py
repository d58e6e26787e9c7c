"""Spatial reasoning: distances from known heights, relations, scene sentences and speech."""

from processors.spatial.geometry import PlacedObject, Relation, estimate_distance_m
from processors.spatial.scene import Scene, describe
from processors.spatial.speech import render_speech, speak_sentences

__all__ = [
    "PlacedObject",
    "Relation",
    "Scene",
    "describe",
    "estimate_distance_m",
    "render_speech",
    "speak_sentences",
]
