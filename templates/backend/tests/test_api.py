def test_health(client):
    res = client.get("/api/health")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}


def test_create_list_delete_item(client):
    assert client.get("/api/items").json() == []

    res = client.post("/api/items", json={"name": "milk"})
    assert res.status_code == 201
    item = res.json()
    assert item["name"] == "milk"
    assert isinstance(item["id"], int)
    assert item["created_at"]

    assert client.get("/api/items").json() == [item]
    assert client.get(f"/api/items/{item['id']}").json() == item

    assert client.delete(f"/api/items/{item['id']}").status_code == 204
    assert client.get("/api/items").json() == []


def test_missing_item_is_404(client):
    assert client.get("/api/items/999").status_code == 404
    res = client.delete("/api/items/999")
    assert res.status_code == 404
    assert res.json() == {"detail": "Item not found"}


def test_invalid_item_is_422(client):
    assert client.post("/api/items", json={}).status_code == 422
    assert client.post("/api/items", json={"name": ""}).status_code == 422
