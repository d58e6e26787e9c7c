"""Multi-page PDFs of real English and German prose, made with reportlab.

Every page has a heading and paragraphs drawn from both languages in a different order,
so OCR reads real words (umlauts and ß included) and every document is unique content
(an identical upload would only be a duplicate of the first).
"""

from __future__ import annotations

import io
import random

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

ENGLISH = (
    "The annual meeting of the board will take place on the second Tuesday of May. All "
    "members are asked to confirm their attendance by the end of April.",
    "The agenda includes the budget for next year, the new office lease and the audit. "
    "Please bring the signed minutes of the last meeting and any open invoices.",
    "Travel costs are refunded against receipts within thirty days of the meeting. "
    "Questions about the agenda can be sent to the secretary at any time before then.",
    "The warehouse will be closed for inventory from the first to the third of June. "
    "Orders placed during this period are shipped on the following Monday.",
    "Delivery note: twelve pallets of printer paper, four boxes of toner cartridges and "
    "two replacement drums were received in good condition and checked against the order.",
    "Maintenance of the lifts is scheduled for Saturday morning. Please use the stairs "
    "on the east side of the building while the engineers are at work.",
)
GERMAN = (
    "Die Jahresversammlung des Vorstands findet am zweiten Dienstag im Mai statt. Alle "
    "Mitglieder werden gebeten, ihre Teilnahme bis Ende April zu bestätigen.",
    "Auf der Tagesordnung stehen der Haushalt, der neue Mietvertrag und die Prüfung. "
    "Bitte bringen Sie das unterschriebene Protokoll und offene Rechnungen mit.",
    "Reisekosten werden gegen Belege innerhalb von dreißig Tagen erstattet. Für "
    "Rückfragen zur Tagesordnung steht Ihnen die Geschäftsführung gern zur Verfügung.",
    "Das Lager bleibt wegen der Inventur vom ersten bis dritten Juni geschlossen. "
    "Bestellungen aus diesem Zeitraum werden am darauffolgenden Montag verschickt.",
    "Lieferschein: zwölf Paletten Druckerpapier, vier Kartons Tonerkartuschen und zwei "
    "Ersatztrommeln wurden in einwandfreiem Zustand geliefert und mit der Bestellung geprüft.",
    "Die Wartung der Aufzüge ist für Samstagvormittag geplant. Bitte benutzen Sie während "
    "der Arbeiten das Treppenhaus auf der Ostseite des Gebäudes.",
)


def document_pdf(number: int, pages: int, paragraphs_per_page: int = 12) -> bytes:
    """A PDF of exactly `pages` pages; `number` makes its text differ from the others'."""
    if pages < 1:
        raise ValueError("a document has at least one page")
    rng = random.Random(number)
    styles = getSampleStyleSheet()
    story: list[object] = []
    for page in range(1, pages + 1):
        story.append(Paragraph(f"Report {number} - Seite {page} / page {page}", styles["Heading2"]))
        texts = [*ENGLISH, *GERMAN]
        rng.shuffle(texts)
        for text in texts[:paragraphs_per_page]:
            story.append(
                Paragraph(
                    f"{text} (Ref. {number}-{page}-{rng.randint(100, 999)})", styles["BodyText"]
                )
            )
            story.append(Spacer(1, 6))
        if page < pages:
            story.append(PageBreak())
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Sustained load document {number}",
        author="visionlog bench",
    ).build(story)
    return buffer.getvalue()
