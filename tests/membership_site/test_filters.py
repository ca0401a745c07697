"""Date-time list filters: any ISO 8601 offset Python accepts is a UTC instant or a 400."""

import datetime

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/members?joined_after={value}",
        "/api/v1/members?updated_since={value}",
        "/api/v1/members/{member_id}/transactions?occurred_after={value}",
        "/api/v1/members/{member_id}/transactions?recorded_before={value}",
        "/api/v1/members/{member_id}/redemptions?redeemed_after={value}",
        "/api/v1/members/{member_id}/tier/history?at_before={value}",
        "/api/v1/purchases?occurred_before={value}",
        "/api/v1/purchases?recorded_after={value}",
        "/api/v1/jobs?created_after={value}",
    ],
)
def test_datetime_filter_offset_beyond_postgresql_range_is_not_a_500(api, member, url):
    # PostgreSQL rejects offsets past ±15:59 ("time zone displacement out of range").
    for value in ("7324-03-26T13:25:18%2B19:50", "1338-01-02T14:34:50-22:56"):
        response = api.get(url.format(member_id=member.id, value=value))
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00%2B05:00", "9999-12-31T23:00:00-05:00"])
def test_datetime_filter_out_of_range_in_utc_is_400(api, value):
    response = api.get(f"/api/v1/members?joined_after={value}")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"] == [
        {
            "field": "joined_after",
            "code": "out_of_range",
            "message": "Enter a date and time between 0001-01-01 and 9999-12-31 in UTC.",
        }
    ]


def test_datetime_filter_with_large_offset_compares_the_instant(api, member):
    offset = datetime.timezone(datetime.timedelta(hours=19, minutes=50))
    joined = member.joined_at.astimezone(offset)

    def ids(moment):
        value = moment.isoformat().replace("+", "%2B")
        response = api.get(f"/api/v1/members?joined_after={value}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(joined - datetime.timedelta(minutes=1)) == [member.id]
    assert ids(joined + datetime.timedelta(minutes=1)) == []
