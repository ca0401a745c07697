"""Cursor pagination: a forged or damaged cursor is a 400 naming ``cursor``, never a 500."""

import base64

import pytest

pytestmark = pytest.mark.django_db


def _cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode().replace("=", "%3D")


def _assert_invalid_cursor(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [(e["field"], e["message"]) for e in errors] == [
        ("cursor", "The cursor is not valid; use the 'next' or 'previous' link as given.")
    ]


@pytest.mark.parametrize(
    ("url", "position"),
    [
        ("/api/v1/members", "x"),  # ordered by id
        ("/api/v1/members", "1e400"),
        ("/api/v1/members", "9" * 50),  # past bigint
        ("/api/v1/members", "2026-13-45"),
        ("/api/v1/jobs", "nan"),
        ("/api/v1/labels", "\x00"),  # ordered by code (text)
        ("/api/v1/tiers", "x"),  # ordered by rank (integer)
        ("/api/v1/tiers", str(2**40)),  # past smallint
    ],
)
def test_forged_cursor_position_is_400(api, member, url, position):
    _assert_invalid_cursor(api.get(f"{url}?cursor={_cursor('p=' + position)}"))
    _assert_invalid_cursor(api.get(f"{url}?cursor={_cursor('r=1&p=' + position)}"))


def test_cursor_links_still_page_through_everything(api, make_member):
    made = [make_member().pk for _ in range(5)]
    seen, url = [], "/api/v1/members?limit=2"
    while url:
        page = api.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted(made, reverse=True)
    back = api.get(api.get("/api/v1/members?limit=2").json()["next"]).json()["previous"]
    assert [row["id"] for row in api.get(back).json()["results"]] == sorted(made, reverse=True)[:2]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "%20", "%D9%A1"])
def test_bad_page_size_is_400(api, member, limit):
    # DRF ignored these and answered the default page.
    response = api.get(f"/api/v1/members?limit={limit}")
    assert response.status_code == 400, response.content
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("limit", "invalid")]


def test_page_size_above_the_cap_is_the_cap(api, make_member, settings):
    settings.API_PAGE_SIZE_MAX = 2
    for _ in range(3):
        make_member()
    for limit in ("2", "3", "1" + "0" * 30):
        assert len(api.get(f"/api/v1/members?limit={limit}").json()["results"]) == 2
    assert len(api.get("/api/v1/members?limit=1").json()["results"]) == 1
    assert len(api.get("/api/v1/members?limit=").json()["results"]) == 3  # empty: the default (50)
