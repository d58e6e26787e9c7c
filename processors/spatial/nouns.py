"""English and German nouns for the COCO classes, with what grammar needs of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Gender = Literal["m", "f", "n"]


@dataclass(frozen=True)
class EnglishNoun:
    singular: str
    plural: str

    @property
    def article(self) -> str:
        return "an" if self.singular[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class GermanNoun:
    gender: Gender
    singular: str
    plural: str
    # Weak masculine nouns (der Elefant, dem Elefanten) change in the dative singular.
    dative_singular: str
    dative_plural: str


def _de(gender: Gender, singular: str, plural: str, dative_singular: str = "") -> GermanNoun:
    # Dative plural adds -n unless the plural already ends in -n, -s or -i.
    dative_plural = plural if plural.endswith(("n", "s", "i")) or " " in plural else plural + "n"
    return GermanNoun(gender, singular, plural, dative_singular or singular, dative_plural)


def _en(singular: str, plural: str = "") -> EnglishNoun:
    return EnglishNoun(singular, plural or singular + "s")


NOUNS: dict[str, tuple[EnglishNoun, GermanNoun]] = {
    "person": (_en("person", "people"), _de("f", "Person", "Personen")),
    "bicycle": (_en("bicycle"), _de("n", "Fahrrad", "Fahrräder")),
    "car": (_en("car"), _de("n", "Auto", "Autos")),
    "motorcycle": (_en("motorcycle"), _de("n", "Motorrad", "Motorräder")),
    "airplane": (_en("airplane"), _de("n", "Flugzeug", "Flugzeuge")),
    "bus": (_en("bus", "buses"), _de("m", "Bus", "Busse")),
    "train": (_en("train"), _de("m", "Zug", "Züge")),
    "truck": (_en("truck"), _de("m", "Lastwagen", "Lastwagen")),
    "boat": (_en("boat"), _de("n", "Boot", "Boote")),
    "traffic light": (_en("traffic light"), _de("f", "Ampel", "Ampeln")),
    "fire hydrant": (_en("fire hydrant"), _de("m", "Hydrant", "Hydranten", "Hydranten")),
    "stop sign": (_en("stop sign"), _de("n", "Stoppschild", "Stoppschilder")),
    "parking meter": (_en("parking meter"), _de("f", "Parkuhr", "Parkuhren")),
    "bench": (_en("bench", "benches"), _de("f", "Bank", "Bänke")),
    "bird": (_en("bird"), _de("m", "Vogel", "Vögel")),
    "cat": (_en("cat"), _de("f", "Katze", "Katzen")),
    "dog": (_en("dog"), _de("m", "Hund", "Hunde")),
    "horse": (_en("horse"), _de("n", "Pferd", "Pferde")),
    "sheep": (_en("sheep", "sheep"), _de("n", "Schaf", "Schafe")),
    "cow": (_en("cow"), _de("f", "Kuh", "Kühe")),
    "elephant": (_en("elephant"), _de("m", "Elefant", "Elefanten", "Elefanten")),
    "bear": (_en("bear"), _de("m", "Bär", "Bären", "Bären")),
    "zebra": (_en("zebra"), _de("n", "Zebra", "Zebras")),
    "giraffe": (_en("giraffe"), _de("f", "Giraffe", "Giraffen")),
    "backpack": (_en("backpack"), _de("m", "Rucksack", "Rucksäcke")),
    "umbrella": (_en("umbrella"), _de("m", "Regenschirm", "Regenschirme")),
    "handbag": (_en("handbag"), _de("f", "Handtasche", "Handtaschen")),
    "tie": (_en("tie"), _de("f", "Krawatte", "Krawatten")),
    "suitcase": (_en("suitcase"), _de("m", "Koffer", "Koffer")),
    "frisbee": (_en("frisbee"), _de("f", "Frisbeescheibe", "Frisbeescheiben")),
    "skis": (_en("pair of skis", "pairs of skis"), _de("n", "Paar Ski", "Paar Ski")),
    "snowboard": (_en("snowboard"), _de("n", "Snowboard", "Snowboards")),
    "sports ball": (_en("ball"), _de("m", "Ball", "Bälle")),
    "kite": (_en("kite"), _de("m", "Drachen", "Drachen")),
    "baseball bat": (_en("baseball bat"), _de("m", "Baseballschläger", "Baseballschläger")),
    "baseball glove": (_en("baseball glove"), _de("m", "Baseballhandschuh", "Baseballhandschuhe")),
    "skateboard": (_en("skateboard"), _de("n", "Skateboard", "Skateboards")),
    "surfboard": (_en("surfboard"), _de("n", "Surfbrett", "Surfbretter")),
    "tennis racket": (_en("tennis racket"), _de("m", "Tennisschläger", "Tennisschläger")),
    "bottle": (_en("bottle"), _de("f", "Flasche", "Flaschen")),
    "wine glass": (_en("wine glass", "wine glasses"), _de("n", "Weinglas", "Weingläser")),
    "cup": (_en("cup"), _de("f", "Tasse", "Tassen")),
    "fork": (_en("fork"), _de("f", "Gabel", "Gabeln")),
    "knife": (_en("knife", "knives"), _de("n", "Messer", "Messer")),
    "spoon": (_en("spoon"), _de("m", "Löffel", "Löffel")),
    "bowl": (_en("bowl"), _de("f", "Schüssel", "Schüsseln")),
    "banana": (_en("banana"), _de("f", "Banane", "Bananen")),
    "apple": (_en("apple"), _de("m", "Apfel", "Äpfel")),
    "sandwich": (_en("sandwich", "sandwiches"), _de("n", "Sandwich", "Sandwiches")),
    "orange": (_en("orange"), _de("f", "Orange", "Orangen")),
    "broccoli": (_en("head of broccoli", "heads of broccoli"), _de("m", "Brokkoli", "Brokkoli")),
    "carrot": (_en("carrot"), _de("f", "Karotte", "Karotten")),
    "hot dog": (_en("hot dog"), _de("m", "Hotdog", "Hotdogs")),
    "pizza": (_en("pizza"), _de("f", "Pizza", "Pizzen")),
    "donut": (_en("donut"), _de("m", "Donut", "Donuts")),
    "cake": (_en("cake"), _de("m", "Kuchen", "Kuchen")),
    "chair": (_en("chair"), _de("m", "Stuhl", "Stühle")),
    "couch": (_en("couch", "couches"), _de("n", "Sofa", "Sofas")),
    "potted plant": (_en("potted plant"), _de("f", "Topfpflanze", "Topfpflanzen")),
    "bed": (_en("bed"), _de("n", "Bett", "Betten")),
    "dining table": (_en("table"), _de("m", "Tisch", "Tische")),
    "toilet": (_en("toilet"), _de("f", "Toilette", "Toiletten")),
    "tv": (_en("TV", "TVs"), _de("m", "Fernseher", "Fernseher")),
    "laptop": (_en("laptop"), _de("m", "Laptop", "Laptops")),
    "mouse": (_en("computer mouse", "computer mice"), _de("f", "Maus", "Mäuse")),
    "remote": (_en("remote control"), _de("f", "Fernbedienung", "Fernbedienungen")),
    "keyboard": (_en("keyboard"), _de("f", "Tastatur", "Tastaturen")),
    "cell phone": (_en("mobile phone"), _de("n", "Handy", "Handys")),
    "microwave": (_en("microwave"), _de("f", "Mikrowelle", "Mikrowellen")),
    "oven": (_en("oven"), _de("m", "Ofen", "Öfen")),
    "toaster": (_en("toaster"), _de("m", "Toaster", "Toaster")),
    "sink": (_en("sink"), _de("n", "Waschbecken", "Waschbecken")),
    "refrigerator": (_en("refrigerator"), _de("m", "Kühlschrank", "Kühlschränke")),
    "book": (_en("book"), _de("n", "Buch", "Bücher")),
    "clock": (_en("clock"), _de("f", "Uhr", "Uhren")),
    "vase": (_en("vase"), _de("f", "Vase", "Vasen")),
    "scissors": (_en("pair of scissors", "pairs of scissors"), _de("f", "Schere", "Scheren")),
    "teddy bear": (_en("teddy bear"), _de("m", "Teddybär", "Teddybären", "Teddybären")),
    "hair drier": (_en("hair dryer"), _de("m", "Föhn", "Föhne")),
    "toothbrush": (_en("toothbrush", "toothbrushes"), _de("f", "Zahnbürste", "Zahnbürsten")),
}


def _english_plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + "s"


def nouns_for(class_name: str) -> tuple[EnglishNoun, GermanNoun]:
    """The nouns of a class; unknown classes become a neutral 'object «name»' in German."""
    key = class_name.strip().lower()
    if key in NOUNS:
        return NOUNS[key]
    label = key or "object"
    english = EnglishNoun(label, _english_plural(label))
    german = GermanNoun(
        "n", f"Objekt „{label}“", f"Objekte „{label}“", f"Objekt „{label}“", f"Objekten „{label}“"
    )
    return english, german
