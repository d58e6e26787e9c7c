"""Personal data in German and English text is masked; look-alikes are left alone."""

from __future__ import annotations

import pytest

from processors.anonymise.pii import (
    CARD_NUMBER,
    DATE_OF_BIRTH,
    EMAIL,
    IBAN,
    ID_NUMBER,
    PHONE,
    document_check_digit,
    find_pii,
    iban_is_valid,
    luhn_is_valid,
    mask_pii,
)

POSITIVES = [
    # e-mail
    ("Kontakt: max.mustermann@example.de bitte", EMAIL, "max.mustermann@example.de"),
    ("Write to j.doe+news@mail.example.co.uk today", EMAIL, "j.doe+news@mail.example.co.uk"),
    ("E-Mail:anna_schmidt-2@firma-gmbh.com.", EMAIL, "anna_schmidt-2@firma-gmbh.com"),
    # IBAN, grouped and compact, several countries
    ("IBAN: DE89 3704 0044 0532 0130 00 (Sparkasse)", IBAN, "DE89 3704 0044 0532 0130 00"),
    ("Konto DE89370400440532013000.", IBAN, "DE89370400440532013000"),
    ("Pay to GB82 WEST 1234 5698 7654 32 now", IBAN, "GB82 WEST 1234 5698 7654 32"),
    ("AT61 1904 3002 3457 3201", IBAN, "AT61 1904 3002 3457 3201"),
    ("CH93 0076 2011 6238 5295 7 ist das Konto", IBAN, "CH93 0076 2011 6238 5295 7"),
    ("FR14 2004 1010 0505 0001 3M02 606", IBAN, "FR14 2004 1010 0505 0001 3M02 606"),
    ("NL91ABNA0417164300 and more", IBAN, "NL91ABNA0417164300"),
    # card numbers with a valid Luhn digit and issuer prefix
    ("Visa 4111 1111 1111 1111 exp 12/27", CARD_NUMBER, "4111 1111 1111 1111"),
    ("Karte: 5500-0000-0000-0004", CARD_NUMBER, "5500-0000-0000-0004"),
    ("Amex 378282246310005.", CARD_NUMBER, "378282246310005"),
    # ID numbers: US SSN, German ID card / passport
    ("SSN 123-45-6789 on file", ID_NUMBER, "123-45-6789"),
    ("Social security number: 078 05 1120", ID_NUMBER, "078 05 1120"),
    ("Ausweisnummer: L01X00T47", ID_NUMBER, "L01X00T47"),
    ("Personalausweis T220001293 gültig", ID_NUMBER, "T220001293"),
    ("Reisepass-Nr. C01X00T47", ID_NUMBER, "C01X00T47"),
    ("Passport no. C01X00T47 issued", ID_NUMBER, "C01X00T47"),
    ("Seriennummer L01X00T471 (geprüft)", ID_NUMBER, "L01X00T471"),
    # dates of birth
    ("geboren am 12.03.1985 in Köln", DATE_OF_BIRTH, "12.03.1985"),
    ("Geb. 1. März 1990", DATE_OF_BIRTH, "1. März 1990"),
    ("Geburtsdatum: 03.07.62", DATE_OF_BIRTH, "03.07.62"),
    ("geb. 29.02.00", DATE_OF_BIRTH, "29.02.00"),  # 2000 was a leap year, 1900 was not
    ("DOB: 1985-03-12", DATE_OF_BIRTH, "1985-03-12"),
    ("She was born on March 12, 1985.", DATE_OF_BIRTH, "March 12, 1985"),
    ("Date of birth 12/03/1985", DATE_OF_BIRTH, "12/03/1985"),
    ("born 4 July 1976 in Boston", DATE_OF_BIRTH, "4 July 1976"),
    # phone numbers, international and national formats
    ("Tel. +49 30 12345678", PHONE, "+49 30 12345678"),
    ("Tel.: +49 (0)30 1234 5678", PHONE, "+49 (0)30 1234 5678"),
    ("Telefon 030 12345678 (Zentrale)", PHONE, "030 12345678"),
    ("Fax 030/1234567", PHONE, "030/1234567"),
    ("Mobil: 0171-1234567", PHONE, "0171-1234567"),
    ("Ruf an: (030) 123 456 78", PHONE, "(030) 123 456 78"),
    ("0049 171 1234567 erreichbar", PHONE, "0049 171 1234567"),
    ("Call +44 20 7946 0958 today", PHONE, "+44 20 7946 0958"),
    ("London office 020 7946 0958", PHONE, "020 7946 0958"),
    ("mobile 07700 900123", PHONE, "07700 900123"),
    ("Phone: (555) 123-4567", PHONE, "(555) 123-4567"),
    ("call 555-123-4567 or", PHONE, "555-123-4567"),
    ("US line +1 555 123 4567", PHONE, "+1 555 123 4567"),
]

NEGATIVES = [
    "Schreiben Sie an user@localhost oder @handle",
    "a@b ist keine Adresse, foo@bar.c auch nicht",
    "name at example dot com",
    "DE89 3704 0044 0532 0130 01",  # one digit off: checksum fails
    "DE12345678901234567890 ist eine Zufallszahl",
    "GB00 WEST 1234 5698 7654 32",
    "4111 1111 1111 1112",  # Luhn fails
    "1234 5678 9012 3456",
    "Bestellnummer 1234567890123",
    "000-12-3456 und 666-12-3456 und 900-12-3456",
    "123-45-678",
    "Artikel L01X00T47 im Lager",  # document shape, but no keyword and no check digit
    "Personalnummer T220001294",  # wrong check digit, no document keyword
    "Rechnungsdatum: 12.03.2024",
    "Termin am 12.03.2024 um 10 Uhr",
    "born in Berlin in 1985",
    "geboren am 31.02.1985",  # no such date
    "geboren am 29.02.01",  # no 29 February in 1901 or 2001
    "Ausstellungsdatum 01.02.2020, gültig bis 01.02.2030",
    "10115 Berlin, PLZ 01067 Dresden",
    "Rechnung Nr. 2024-001 über 1.234,56 EUR",
    "Version 1.2.3, Seite 12 von 34",
    "Order 98765432 shipped",
    "ISBN 978-3-16-148410-0",
    "Temperatur 21,5 °C, Luftdruck 1013 hPa",
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_personal_data_is_found(text: str, kind: str, value: str) -> None:
    findings = find_pii(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [(kind, value)]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_left_alone(text: str) -> None:
    masked = mask_pii(text)
    assert masked.findings == []
    assert masked.text == text


def test_only_the_birth_date_is_masked_next_to_other_dates() -> None:
    text = "Geb. 12.03.1985, Ausstellungsdatum 01.02.2020"
    assert mask_pii(text).text == "Geb. [DATE_OF_BIRTH], Ausstellungsdatum 01.02.2020"
    closer = "geb. 12.03.1985 / 01.02.2020"
    assert mask_pii(closer).text == "geb. [DATE_OF_BIRTH] / 01.02.2020"


def test_mixed_document_is_masked_with_counts() -> None:
    text = (
        "Sehr geehrte Frau Schmidt,\n"
        "geboren am 12.03.1985, erreichbar unter +49 171 1234567 oder anna@example.de.\n"
        "Bitte überweisen Sie 1.234,56 EUR auf DE89 3704 0044 0532 0130 00.\n"
        "Your card 4111 1111 1111 1111 and SSN 123-45-6789 are on file.\n"
        "Rechnung 2024-001 vom 01.02.2024."
    )
    masked = mask_pii(text)
    assert masked.text == (
        "Sehr geehrte Frau Schmidt,\n"
        "geboren am [DATE_OF_BIRTH], erreichbar unter [PHONE] oder [EMAIL].\n"
        "Bitte überweisen Sie 1.234,56 EUR auf [IBAN].\n"
        "Your card [CARD_NUMBER] and SSN [ID_NUMBER] are on file.\n"
        "Rechnung 2024-001 vom 01.02.2024."
    )
    assert masked.counts() == {
        DATE_OF_BIRTH: 1, PHONE: 1, EMAIL: 1, IBAN: 1, CARD_NUMBER: 1, ID_NUMBER: 1,
    }  # fmt: skip
    # Spans point into the original text, in order.
    starts = [finding.start for finding in masked.findings]
    assert starts == sorted(starts)
    assert text[masked.findings[0].start : masked.findings[0].end] == "12.03.1985"


def test_checksums() -> None:
    assert iban_is_valid("DE89370400440532013000")
    assert not iban_is_valid("DE89370400440532013001")
    assert not iban_is_valid("DE8937040044053201300")  # German IBANs have 22 characters
    assert luhn_is_valid("4111111111111111")
    assert not luhn_is_valid("4111111111111112")
    assert document_check_digit("T22000129") == 3
    assert document_check_digit("L01X00T47") == 1


def test_empty_text() -> None:
    masked = mask_pii("")
    assert masked.text == ""
    assert masked.findings == []
