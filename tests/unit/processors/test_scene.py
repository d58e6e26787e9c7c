"""Scene sentences in English and German: counts, articles, cases and relations."""

from __future__ import annotations

import pytest

from processors.spatial.geometry import LEFT_OF, PlacedObject
from processors.spatial.nouns import NOUNS, nouns_for
from processors.spatial.scene import describe
from processors.spatial.sentences import Group, ScenePlan, german_phrase, sentences

FOCAL = 1000.0


def _standing(class_name: str, distance_m: float, centre_x: float, height_m: float) -> PlacedObject:
    height_px = FOCAL * height_m / distance_m
    return PlacedObject(
        class_name, centre_x - 0.2 * height_px, 650 - height_px, centre_x + 0.2 * height_px, 650,
        confidence=0.9,
    )  # fmt: skip


def test_two_people_left_of_a_bus() -> None:
    people = [_standing("person", 6.0, 120, 1.7), _standing("person", 6.2, 230, 1.7)]
    bus = PlacedObject("bus", 500, 120, 1250, 660, confidence=0.8)
    scene = describe([*people, bus], 1280, 720, FOCAL)
    assert scene.sentences == {
        "en": "Two people stand left of a bus, about 6 m away.",
        "de": "Zwei Personen stehen links von einem Bus, etwa 6 m entfernt.",
    }
    assert [item.class_name for item in scene.objects] == ["person", "person", "bus"]
    assert scene.positions == ["left", "left", "right"]
    assert scene.objects[0].distance_m == pytest.approx(6.0)
    assert any(r.subject == 0 and r.predicate == LEFT_OF and r.object == 2 for r in scene.relations)


def test_people_in_front_of_a_car_with_extras() -> None:
    people = [_standing("person", 4.0, 600, 1.7), _standing("person", 4.2, 700, 1.7)]
    car = PlacedObject("car", 450, 400, 900, 560, confidence=0.9)  # 1.5 m / 160 px: ~9 m
    extras = [
        PlacedObject("car", 1000, 420, 1200, 520, confidence=0.7),
        PlacedObject("dog", 100, 560, 180, 640, confidence=0.6),
        PlacedObject("elephant", 10, 100, 90, 200, confidence=0.5),
    ]
    scene = describe([*people, car, *extras], 1280, 720, FOCAL)
    assert scene.sentences["en"] == (
        "Two people stand in front of a car, about 4 m away; "
        "also visible: another car, a dog and an elephant."
    )
    assert scene.sentences["de"] == (
        "Zwei Personen stehen vor einem Auto, etwa 4 m entfernt; "
        "außerdem zu sehen: ein weiteres Auto, ein Hund und ein Elefant."
    )


def test_single_class_positions_and_ranges() -> None:
    cars = [_standing("car", 5.0, 1000, 1.5), _standing("car", 12.0, 1150, 1.5)]
    scene = describe(cars, 1280, 720, FOCAL)
    assert scene.sentences == {
        "en": "Two cars are on the right, between 5 and 12 m away.",
        "de": "Zwei Autos sind rechts, zwischen 5 und 12 m entfernt.",
    }


def test_unknown_distance_and_unknown_class() -> None:
    scene = describe([PlacedObject("drone", 600, 100, 700, 160)], 1280, 720, FOCAL)
    assert scene.objects[0].distance_m is None
    assert scene.sentences == {
        "en": "A drone is in the centre.",
        "de": "Ein Objekt „drone“ ist in der Mitte.",
    }


def test_empty_scene() -> None:
    scene = describe([], 640, 480, FOCAL)
    assert scene.objects == [] and scene.relations == []
    assert scene.sentences == {
        "en": "No objects were detected.",
        "de": "Es wurden keine Objekte erkannt.",
    }


@pytest.mark.parametrize(
    ("relation", "anchor", "english", "german"),
    [
        ("RIGHT_OF", "truck", "A dog is right of a truck.",
         "Ein Hund ist rechts von einem Lastwagen."),
        ("BEHIND", "person", "A dog is behind a person.", "Ein Hund ist hinter einer Person."),
        ("NEAR", "elephant", "A dog is next to an elephant.",
         "Ein Hund ist neben einem Elefanten."),
        ("NEAR", "car", "A dog is next to a car.", "Ein Hund ist neben einem Auto."),
        (None, "bench", "A dog and a bench are in the picture.",
         "Ein Hund und eine Bank sind im Bild."),
    ],
)  # fmt: skip
def test_relations_and_dative_articles(
    relation: str | None, anchor: str, english: str, german: str
) -> None:
    plan = ScenePlan(Group("dog", 1), "centre", relation=relation, anchor_class=anchor)
    assert sentences(plan) == {"en": english, "de": german}


@pytest.mark.parametrize(
    ("group", "case", "expected"),
    [
        (Group("person", 1), "nom", "eine Person"),
        (Group("bus", 3), "dat", "drei Bussen"),
        (Group("bicycle", 2), "dat", "zwei Fahrrädern"),
        (Group("truck", 2), "dat", "zwei Lastwagen"),
        (Group("car", 14), "nom", "14 Autos"),
        (Group("bear", 1), "dat", "einem Bären"),
        (Group("traffic light", 1), "dat", "einer Ampel"),
        (Group("person", 1, more=True), "nom", "eine weitere Person"),
        (Group("bus", 1, more=True), "nom", "ein weiterer Bus"),
        (Group("car", 2, more=True), "nom", "zwei weitere Autos"),
    ],
)
def test_german_counts_cases_and_genders(group: Group, case: str, expected: str) -> None:
    assert german_phrase(group, case) == expected


def test_english_plural_and_articles_in_sentences() -> None:
    extras = (Group("umbrella", 1), Group("knife", 2), Group("bus", 2, more=True))
    plan = ScenePlan(Group("person", 3), "mixed", extras=extras)
    assert sentences(plan)["en"] == (
        "Three people stand across the picture; "
        "also visible: an umbrella, two knives and two more buses."
    )
    assert sentences(plan)["de"] == (
        "Drei Personen stehen verteilt im Bild; "
        "außerdem zu sehen: ein Regenschirm, zwei Messer und zwei weitere Busse."
    )


def test_all_coco_classes_have_nouns() -> None:
    assert len(NOUNS) == 80
    for english, german in NOUNS.values():
        assert english.singular and english.plural
        assert german.gender in ("m", "f", "n") and german.singular[0].isupper()


def test_fallback_nouns_for_other_labels() -> None:
    english, german = nouns_for("forklift")
    assert (english.singular, english.plural, english.article) == ("forklift", "forklifts", "a")
    assert german.singular == "Objekt „forklift“"
    assert nouns_for("box")[0].plural == "boxes"
