"""Redaction of card numbers, national ids, phones and e-mails, and what it must leave alone."""

from __future__ import annotations

import pytest

from evaluators.redact import find_pii, luhn_valid, redact, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cards: contiguous, grouped by spaces or dashes, 13 to 19 digits, all Luhn-valid
        ("my card is 4111 1111 1111 1111 thanks", "my card is [CARD] thanks"),
        ("card: 4111-1111-1111-1111.", "card: [CARD]."),
        ("it's 4111111111111111", "it's [CARD]"),
        ("amex 3782 822463 10005 expiring", "amex [CARD] expiring"),
        ("the long one 6011 0009 9013 9424", "the long one [CARD]"),
        ("old visa 4222222222222 still", "old visa [CARD] still"),
        ("nineteen 6304 0000 0000 0000 018 ok", "nineteen [CARD] ok"),
        ("4111 1111 1111 1111 2 times", "[CARD] 2 times"),
        ("number 5555 5555 5555 4444 and cvv 123", "number [CARD] and cvv 123"),
        # national ids
        ("SSN 123-45-6789 on file", "SSN [NATIONAL_ID] on file"),
        ("it's 123 45 6789", "it's [NATIONAL_ID]"),
        ("my social security number is 123456789", "my social security number is [NATIONAL_ID]"),
        ("ssn: 078051120", "ssn: [NATIONAL_ID]"),
        ("NI number JG 10 37 59 A please", "NI number [NATIONAL_ID] please"),
        ("national insurance AB123456D", "national insurance [NATIONAL_ID]"),
        ("it's ab 12 34 56 c", "it's [NATIONAL_ID]"),
        # phones: international
        ("call me on +44 20 7946 0958 tomorrow", "call me on [PHONE] tomorrow"),
        ("+1 (415) 555-0132", "[PHONE]"),
        ("mobile +447700900123.", "mobile [PHONE]."),
        ("from abroad 0044 20 7946 0958", "from abroad [PHONE]"),
        ("+33 6 12 34 56 78 is mine", "[PHONE] is mine"),
        ("+44 (0)20 7946 0958", "[PHONE]"),
        # phones: national forms
        ("ring (415) 555-0132 after six", "ring [PHONE] after six"),
        ("it's 415-555-0132", "it's [PHONE]"),
        ("415.555.0132", "[PHONE]"),
        ("1-800-555-0199 is the line", "[PHONE] is the line"),
        ("landline 020 7946 0958", "landline [PHONE]"),
        ("mobile is 07700 900123", "mobile is [PHONE]"),
        ("07700900123 is best", "[PHONE] is best"),
        ("appelez le 06 12 34 56 78", "appelez le [PHONE]"),
        ("01632 960 001 works", "[PHONE] works"),
        # e-mails, written and spoken
        ("email jo.smith+bills@example.co.uk now", "email [EMAIL] now"),
        ("<Ana_Ruiz@mail.example.com>", "<[EMAIL]>"),
        ("it's jo dot smith at gmail dot com", "it's [EMAIL]"),
        (
            "send it to ana underscore ruiz at harbor dot co dot uk please",
            "send it to [EMAIL] please",
        ),
        # several in one turn
        (
            "card 4111 1111 1111 1111, phone 020 7946 0958, mail a@b.io",
            "card [CARD], phone [PHONE], mail [EMAIL]",
        ),
    ],
)
def test_personal_numbers_are_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # digit runs of card length that fail Luhn (order numbers, tracking numbers)
        "order 4111 1111 1111 1112 is on its way",
        "tracking 1234567890123456",
        "your reference is 9876 5432 1098 7654",
        # short references, account and order numbers
        "order #A1234-5678 shipped",
        "your reference is HB-40213",
        "account 12345678",
        "order number 0012345678",
        "ticket 100234",
        # times
        "between 8:30 and 12:00",
        "at 14:30:15",
        "we open 09.30 till 17.30",
        "the 10 30 slot",
        # money
        "you were charged $1,234,567.89 in error",
        "a refund of £42.50 and then 1 234 567 euros",
        "it's 19.99 a month, 239.88 a year",
        # dates
        "on 2024-05-12",
        "from 12/05/2024 to 05/06/2024",
        "since 05-12-2024 10 engineers",
        "dated 05.12.2024",
        "on 01 02 2024",
        # other numbers
        "version 3.2.1 of the app",
        "the IP is 192.168.100.254",
        "postcode SW1A 1AA",
        "3 to 5 working days",
        "about 20 to 30 minutes",
        # words that look like addresses but are not
        "look at the website dot com",
        "meet at noon",
        "email me at some point",
        "the ssn field is blank",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("79927398713", True),
        ("79927398710", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


def test_counts_by_kind_and_spans_do_not_overlap() -> None:
    text = "4111 1111 1111 1111 / +44 20 7946 0958 / x@y.com / z@w.org / 123-45-6789"

    result = redact_text(text)
    spans = find_pii(text)

    assert result.counts == {"CARD": 1, "PHONE": 1, "EMAIL": 2, "NATIONAL_ID": 1}
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert result.text == "[CARD] / [PHONE] / [EMAIL] / [EMAIL] / [NATIONAL_ID]"


def test_international_card_length_phone_is_a_phone_not_a_card() -> None:
    # 13 digits that happen to pass Luhn, written as a phone number with a country code
    number = "+49 30 1234 56786"
    assert luhn_valid("4930123456786")

    assert redact(f"call {number}") == "call [PHONE]"


def test_text_without_personal_data_is_unchanged() -> None:
    text = "Thanks for calling Harbor Broadband, you're through to Sam. How can I help?"

    assert redact_text(text).text == text
    assert redact_text(text).counts == {}
