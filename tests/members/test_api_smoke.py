def test_member_create_returns_201(api):
    response = api.post("/api/v1/members", {"email": "A@Example.com", "phone": "06 12 34 56 78"})
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "a@example.com"
    assert response.json()["phone"] == "+33612345678"
