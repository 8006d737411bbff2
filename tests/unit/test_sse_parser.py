"""The CLI's Server-Sent Events parser (kombify/cli/sse.py) on the stream format's corners."""

from __future__ import annotations

from kombify.cli.sse import SseEvent, SseParser


def parse(text: str, parser: SseParser | None = None) -> list[SseEvent]:
    parser = parser or SseParser()
    return [e for e in map(parser.feed, text.split("\n")) if e is not None]


def test_events_comments_multiline_data_and_the_last_id() -> None:
    parser = SseParser()
    events = parse(
        ": ping - 2026-12-02 21:00:00\n\n"
        'id: 7\nevent: line\ndata: {"id": 7}\n\n'
        "data: one\ndata:two\n\n"
        'event: end\ndata: {"state": "failed"}\n\n',
        parser,
    )
    assert events == [
        SseEvent("line", '{"id": 7}', "7"),
        SseEvent("message", "one\ntwo", None),
        SseEvent("end", '{"state": "failed"}', None),
    ]
    assert parser.last_id == "7"  # kept across events without an id, for Last-Event-ID
    assert events[2].json() == {"state": "failed"}


def test_an_event_cut_off_before_its_blank_line_is_not_delivered() -> None:
    assert parse('id: 8\nevent: line\ndata: {"id": 8}') == []
